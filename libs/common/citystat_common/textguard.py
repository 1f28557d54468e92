"""Text a database cannot store is refused at the door: a NUL character (U+0000) in a path, a query or
a body. PostgreSQL's text types cannot hold it ("invalid byte sequence for encoding UTF8: 0x00",
a 500 wherever it reached a query) while SQLite stores it, so the two backends would answer the
same request differently; no city record needs it. One check for every route of every service,
instead of a validator on every field.

Bodies are scanned as bytes for the forms NUL takes on the wire (raw, ``%00`` in forms and queries,
``\\u0000`` in JSON), only for text content types; the body is replayed to the app unchanged. An app
may answer in its own format through ``app.state.bad_input_response(path, detail)`` (intake311's
Open311 routes answer with the spec's error document).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from citystat_common.asgi import HttpMiddleware, shared_body
from citystat_common.errors import problem

_IN_URL = (b"%00", b"\x00")
_IN_BODY = (b"\x00", b"%00", b"\\u0000")
_TEXT_TYPES = (b"application/json", b"application/x-www-form-urlencoded", b"text/", b"application/problem+json",
               b"multipart/form-data")
DETAIL = "text must not contain the NUL character (U+0000)"


def _where_in_url(scope: Scope) -> tuple[str, str] | None:
    raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
    if any(m in raw_path for m in _IN_URL) or "\x00" in scope.get("path", ""):
        return "path", "path"
    query = scope.get("query_string") or b""
    if any(m in query for m in _IN_URL):
        return "query", _pair_field(query) or "query"
    return None


def _pair_field(data: bytes) -> str | None:
    """The name of the first urlencoded pair whose name or value holds a NUL."""
    for name, value in parse_qsl(data.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "") or "query"
    return None


def _json_field(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string in a JSON document that holds a NUL."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        if isinstance(key, str) and "\x00" in key:
            return path or "body"
        found = _json_field(child, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


def _body_field(content_type: bytes, body: bytes) -> str:
    try:
        if content_type.startswith(b"application/json") or content_type.startswith(b"application/problem+json"):
            return _json_field(json.loads(body)) or "body"
        if content_type.startswith(b"application/x-www-form-urlencoded"):
            return _pair_field(body) or "body"
    except ValueError:
        pass
    return "body"


class NulTextGuard(HttpMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        where = _where_in_url(scope)
        if where is None and scope.get("method") in ("POST", "PUT", "PATCH"):
            content_type = dict(scope.get("headers") or []).get(b"content-type", b"").lower()
            if any(content_type.startswith(t) for t in _TEXT_TYPES):
                body, receive = await shared_body(scope, receive)
                if any(m in body for m in _IN_BODY):
                    where = "body", _body_field(content_type, body)
        if where is not None:
            part, field = where
            await self._refuse(scope, f"{DETAIL}: found in the {part}", field)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _refuse(scope: Scope, detail: str, field: str) -> Any:
        state = getattr(scope.get("app"), "state", None)
        hook = getattr(state, "bad_input_response", None)
        response = hook(scope.get("path", ""), f"{field}: {detail}") if hook is not None else None
        if response is not None:
            return response
        return problem(422, "Validation failed", f"{field}: {detail}", errors=[{"field": field, "message": DETAIL}])
