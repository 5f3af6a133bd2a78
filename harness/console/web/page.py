"""The console's one page: ``page/index.html`` with ``console.css`` and ``console.js`` inlined,
so the page is one answer and no other URL needs the token.

``index.html`` holds the markers ``<style>/*CONSOLE_CSS*/</style>`` and
``<script>/*CONSOLE_JS*/</script>``; each is replaced by the file's text, the script tag with the
answer's CSP nonce. The files are package data (read with :mod:`importlib.resources`, so an
installed wheel serves the same page) and read on every request (a page of a few dozen KB), so
editing them needs no restart.
"""

from __future__ import annotations

import re
from importlib import resources

PAGE = resources.files("harness.console.web") / "page"
CSS_MARKER = "<style>/*CONSOLE_CSS*/</style>"
JS_MARKER = "<script>/*CONSOLE_JS*/</script>"


def _read(name: str) -> str:
    return (PAGE / name).read_text(encoding="utf-8")


def content_security_policy(nonce: str) -> str:
    """Only the page's own inline script (by nonce) and styles; fetches to this origin only."""
    return (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; "
        "style-src 'unsafe-inline'; "
        "img-src 'self' data:; "
        "connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def render_page(nonce: str) -> str:
    """The page with its style and script inlined, the script carrying ``nonce``."""
    html = _read("index.html")
    css = re.sub(r"</(style)", r"<\\/\1", _read("console.css"), flags=re.IGNORECASE)
    js = re.sub(r"</(script)", r"<\\/\1", _read("console.js"), flags=re.IGNORECASE)
    html = html.replace(CSS_MARKER, f"<style>{css}</style>")
    return html.replace(JS_MARKER, f'<script nonce="{nonce}">{js}</script>')
