"""MkDocs hooks of the documentation site (``hooks:`` in ``mkdocs.yml``).

* ``on_files``: every ``reference/<module>.md`` the nav names and ``docs/`` does not hold is
  made here, as a page with one mkdocstrings directive (``::: <module>``): the nav is the list
  of documented modules.
* ``on_page_markdown``: ``<!-- generate: NAME [ARGUMENT] -->`` lines become generated Markdown
  (:mod:`gen_pages`).
* ``on_page_content``: reStructuredText roles left in docstrings (``:class:`X```) show as code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import gen_pages
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

REFERENCE = "reference/"
_ROLE_HTML = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):(<code>)~?")


def _nav_pages(nav: Any) -> Iterator[str]:
    """Every page path in a nav configuration (nested lists and single-key mappings)."""
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, list):
        for item in nav:
            yield from _nav_pages(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_pages(value)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add a page for every API reference module the nav names."""
    for path in _nav_pages(config.nav):
        if path.startswith(REFERENCE) and files.get_file_from_path(path) is None:
            module = path.removeprefix(REFERENCE).removesuffix(".md")
            content = f"# `{module}`\n\n::: {module}\n"
            files.append(File.generated(config, path, content=content))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Replace the page's generate directives with generated Markdown."""
    try:
        return gen_pages.expand(markdown)
    except gen_pages.DocsError as exc:
        raise gen_pages.DocsError(f"{page.file.src_uri}: {exc}") from None


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """``:class:<code>X</code>`` (a role mkdocstrings left alone) → ``<code>X</code>``."""
    return _ROLE_HTML.sub(r"\1", html)
