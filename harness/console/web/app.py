"""The console's FastAPI app: the routes of the console API over a
:class:`~harness.console.CardController` or its stand-in in a console process of its own
(:mod:`~harness.console.remote`); see ``docs/console.md`` and :mod:`harness.console`.

Every route checks its input before it acts; a refusal is JSON ``{"error", "field"}``: 400 a
bad value, 404 an unknown reader, credential or route, 409 the reader's state forbids it
(:data:`~harness.console.web.errors.STATUS_OF_KIND`), 401 / 403 from the guard
(:mod:`~harness.console.web.guard`). Routes that act run in the thread pool (an action may
wait for the reader); the event streams run on the loop (:mod:`~harness.console.web.sse`).
"""

from __future__ import annotations

import re
import secrets
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, JSONResponse, Response

from apdu.version import version
from card_emulator import persona as persona_module
from card_emulator.profiles import BUILTIN
from harness.console import ControlError, inputs
from harness.console.controls import Controls, ReaderRef
from harness.console.state import ReaderState
from harness.console.web.errors import STATUS_OF_KIND, error_response
from harness.console.web.guard import Guard
from harness.console.web.models import (
    MAX_TOML,
    CertificateBody,
    CredentialBody,
    FaultsBody,
    PersonaBody,
)
from harness.console.web.page import content_security_policy, render_page
from harness.console.web.sse import QUEUE, EventStreamResponse, Streams, event_stream

CERTIFICATE_ACTIONS = ("revoke", "hold", "release")


@dataclass(frozen=True, slots=True)
class PersonaChoice:
    """A persona file the console offers (``GET /api/personas``)."""

    name: str
    """The file's stem, made unique (``demo``, ``demo-2``)."""
    label: str
    holder: str
    path: Path

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "holder": self.holder}


def persona_choices(paths: Sequence[str | Path]) -> list[PersonaChoice]:
    """The persona files ``paths``, loaded and named by their stems (made unique)."""
    choices: list[PersonaChoice] = []
    taken: set[str] = set()
    for each in paths:
        path = Path(each)
        persona = persona_module.load(path)
        name, number = path.stem, 1
        while name in taken:
            number += 1
            name = f"{path.stem}-{number}"
        taken.add(name)
        choices.append(PersonaChoice(name, persona.label, persona.holder.name, path))
    return choices


def _field(location: Sequence[int | str]) -> str:
    parts = [str(part) for part in location]
    if parts and parts[0] in ("body", "path", "query"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _exactly_one(body: Mapping[str, object], *names: str) -> str:
    given = [name for name in names if body.get(name) is not None]
    if len(given) != 1:
        raise ControlError("body", f"give exactly one of {' or '.join(names)}")
    return given[0]


def _toml(text: str, field: str = "toml") -> dict[str, Any]:
    if len(text.encode("utf-8", "replace")) > MAX_TOML:
        raise ControlError(field, f"more than {MAX_TOML // 1024} KiB")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ControlError(field, f"not valid TOML ({exc})") from None
    except RecursionError:
        raise ControlError(field, "arrays or tables nested too deeply") from None


def _self_contained(tables: dict[str, Any], field: str = "toml") -> dict[str, Any]:
    """``tables`` of an uploaded persona, refused if they name a file: image paths and profile
    files would be read on the card's machine (relative to wherever ``serve`` runs, or any
    absolute path), so an upload could put that machine's files on a card."""
    images = tables.get("images")
    if isinstance(images, Mapping) and images:
        kind = next(iter(images))
        raise ControlError(
            field,
            f"images.{kind}: an uploaded persona cannot name files on the card's machine; give "
            "serve the persona file (--persona) and choose it by name",
        )
    profile = tables.get("profile")
    if isinstance(profile, str) and profile not in BUILTIN:
        raise ControlError(
            field,
            f"profile: an uploaded persona names a built-in profile ({', '.join(BUILTIN)}), "
            "not a profile file; give serve the persona file (--persona) and choose it by name",
        )
    return tables


def _as(field: str, error: ControlError) -> ControlError:
    """``error`` naming ``field`` (what the body called the value the controller checked)."""
    return ControlError(field, error.reason, error.kind)


def _filename(reader: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", reader).strip("_") or "reader"


def create_app(
    controller: Controls,
    token: str,
    *,
    port: int,
    personas: Sequence[str | Path] = (),
) -> FastAPI:
    """The console app over ``controller``: requests need ``token`` and a Host of
    ``127.0.0.1:<port>`` or ``localhost:<port>``; ``personas`` are the persona files a reader
    can switch to by name (checked here: a bad file raises)."""
    choices = {choice.name: choice for choice in persona_choices(personas)}
    streams = Streams()
    app = FastAPI(
        title="mynacard console",
        version=version(),
        description="Watch and drive the emulated cards of `mynacard serve`.",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.streams = streams
    app.state.controller = controller
    app.add_middleware(Guard, token=token, port=port)

    @app.exception_handler(ControlError)
    async def refused(request: Request, exc: ControlError) -> JSONResponse:
        return error_response(STATUS_OF_KIND.get(exc.kind, 400), str(exc), exc.field)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        location = first.get("loc", ("body",))
        field = _field(location)
        if first.get("type") == "json_invalid":
            return error_response(400, "body: malformed JSON", "body")
        message = str(first.get("msg", "invalid value"))
        return error_response(400, f"{field}: {message}", field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = "no such route" if exc.status_code == 404 else str(exc.detail)
        field = "body" if exc.status_code == 400 else None  # a body FastAPI could not parse
        if field is not None:
            message = f"body: {message}"
        return error_response(exc.status_code, message, field, exc.headers)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:  # a bug, not input
        return error_response(500, f"internal error ({type(exc).__name__})", None)

    def ref(reader: str) -> ReaderRef:
        """A reader's name, or its index when no reader has that name."""
        if reader in controller.readers:
            return reader
        if reader.isascii() and reader.isdigit() and len(reader) <= 6:
            return int(reader)
        return reader

    def answer(state: ReaderState) -> JSONResponse:
        return JSONResponse(state.to_json())

    # -- the page and the lists ----------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, summary="The console page")
    def page() -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        return HTMLResponse(
            render_page(nonce), headers={"Content-Security-Policy": content_security_policy(nonce)}
        )

    @app.get("/api/cards", summary="Every reader's state")
    def cards() -> JSONResponse:
        return JSONResponse(
            {
                "cards": [state.to_json() for state in controller.snapshot()],
                "pki": controller.has_pki,
            }
        )

    @app.get("/api/personas", summary="The personas a reader can switch to")
    def personas_list() -> JSONResponse:
        return JSONResponse({"personas": [choice.to_json() for choice in choices.values()]})

    @app.get("/api/scenarios", summary="The kiosk scenarios of the conformance catalogue")
    def scenarios() -> JSONResponse:
        return JSONResponse(
            {
                "scenarios": [
                    {"name": entry.name, "summary": entry.title, "applicable": not entry.persona}
                    for entry in inputs.catalogue().values()
                ]
            }
        )

    @app.get("/api/events", summary="Server-Sent Events of every reader")
    def all_events() -> EventStreamResponse:
        subscription = controller.subscribe(QUEUE)

        def hello() -> dict[str, Any]:
            return {"cards": [state.to_json() for state in controller.snapshot()]}

        return EventStreamResponse(event_stream(subscription, hello, None, streams), subscription)

    # -- one reader ----------------------------------------------------------------------------

    @app.get("/api/cards/{reader}", summary="One reader's state")
    def card(reader: str) -> JSONResponse:
        return answer(controller.state(ref(reader)))

    @app.get("/api/cards/{reader}/events", summary="Server-Sent Events of one reader")
    def reader_events(reader: str) -> EventStreamResponse:
        name = controller.state(ref(reader)).reader
        subscription = controller.subscribe(QUEUE)

        def hello() -> dict[str, Any]:
            return {"cards": [controller.state(name).to_json()]}

        return EventStreamResponse(event_stream(subscription, hello, name, streams), subscription)

    @app.get(
        "/api/cards/{reader}/trace",
        summary="The reader's masked trace (format 2, JSON Lines)",
        response_class=Response,
    )
    def trace(reader: str) -> Response:
        name = controller.state(ref(reader)).reader
        return Response(
            controller.trace(name),
            media_type="application/x-ndjson",
            headers={
                "Content-Disposition": f'attachment; filename="{_filename(name)}.trace.jsonl"'
            },
        )

    @app.post("/api/cards/{reader}/insert", summary="Put the card into the reader")
    def insert(reader: str) -> JSONResponse:
        return answer(controller.insert(ref(reader)))

    @app.post("/api/cards/{reader}/remove", summary="Take the card out of the reader")
    def remove(reader: str) -> JSONResponse:
        return answer(controller.remove(ref(reader)))

    @app.post("/api/cards/{reader}/glitch", summary="A power glitch (volatile state lost)")
    def glitch(reader: str) -> JSONResponse:
        return answer(controller.glitch(ref(reader)))

    @app.post("/api/cards/{reader}/reset", summary="A warm reset of the card")
    def reset(reader: str) -> JSONResponse:
        return answer(controller.reset(ref(reader)))

    @app.post(
        "/api/cards/{reader}/credentials/{ap}/{credential}",
        summary="Set a credential's tries left, lock, unlock or refill it",
    )
    def set_credential(reader: str, ap: str, credential: str, body: CredentialBody) -> JSONResponse:
        what = _exactly_one(body.model_dump(), "tries", "action")
        found = controller.credential(ref(reader), ap, credential)
        if what == "tries":
            tries = body.tries
            assert tries is not None
        else:
            tries = 0 if body.action == "lock" else found.max_tries
        target = found.name if found.name is not None else (found.application, found.fid)
        return answer(controller.set_tries(ref(reader), target, tries))

    @app.post("/api/cards/{reader}/persona", summary="Switch the reader to another persona")
    def switch_persona(reader: str, body: PersonaBody) -> JSONResponse:
        what = _exactly_one(body.model_dump(), "persona", "toml")
        where = ref(reader)
        controller.state(where)  # an unknown reader is refused before the persona is read
        if what == "persona":
            choice = choices.get(body.persona or "")
            if choice is None:
                known = ", ".join(choices) or "none: serve was given no persona files"
                raise ControlError("persona", f"no persona {body.persona!r} (known: {known})")
            return answer(controller.switch_persona(where, choice.path))
        tables = _self_contained(_toml(body.toml or ""))
        try:
            return answer(controller.switch_persona(where, tables))
        except ControlError as exc:
            raise _as("toml", exc) if exc.field == "persona" else exc from None

    @app.post("/api/cards/{reader}/faults", summary="Apply a fault scenario to the card")
    def apply_faults(reader: str, body: FaultsBody) -> JSONResponse:
        what = _exactly_one(body.model_dump(), "scenario", "toml")
        where = ref(reader)
        controller.state(where)
        if what == "scenario":
            name = body.scenario or ""
            if name not in inputs.catalogue():
                known = ", ".join(inputs.catalogue())
                raise ControlError("scenario", f"no kiosk scenario {name!r} (known: {known})")
            return answer(controller.apply_faults(where, name))
        tables = _toml(body.toml or "")
        try:
            return answer(controller.apply_faults(where, tables))
        except ControlError as exc:
            raise _as("toml", exc) if exc.field == "scenario" else exc from None

    @app.delete("/api/cards/{reader}/faults", summary="Clear the card's faults")
    def clear_faults(reader: str) -> JSONResponse:
        return answer(controller.clear_faults(ref(reader)))

    @app.post(
        "/api/cards/{reader}/certificates/{tree}/{action}",
        summary="Revoke, hold or release the card's certificates (auth, sign or both)",
    )
    def certificates(
        reader: str, tree: str, action: str, body: CertificateBody | None = None
    ) -> JSONResponse:
        if action not in CERTIFICATE_ACTIONS:
            raise ControlError(
                "action", f"expected revoke, hold or release, got {action[:40]!r}", "not_found"
            )
        where = ref(reader)
        controller.state(where)
        reason = body.reason if body is not None else None
        if action == "revoke":
            return answer(controller.revoke(where, tree, reason or "unspecified"))
        if reason is not None:
            raise ControlError("reason", f"a reason goes with revoke, not {action}")
        method = controller.hold if action == "hold" else controller.release
        return answer(method(where, tree))

    return app


__all__ = ["PersonaChoice", "create_app", "persona_choices"]
