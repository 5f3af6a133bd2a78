"""The console's error answers: JSON ``{"error": message, "field": field or null}``."""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.responses import JSONResponse

STATUS_OF_KIND = {"invalid": 400, "not_found": 404, "conflict": 409}
"""The HTTP status of each :attr:`ControlError.kind <harness.console.ControlError.kind>`."""


def error_body(message: str, field: str | None) -> bytes:
    """The JSON of an error answer."""
    return json.dumps({"error": message, "field": field}, ensure_ascii=False).encode()


def error_response(
    status: int, message: str, field: str | None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An error answer for a route (the guard answers with :func:`error_body` itself)."""
    return JSONResponse({"error": message, "field": field}, status, headers=dict(headers or {}))
