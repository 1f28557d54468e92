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

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from citystat_common.errors import problem
from citystat_common.ratelimit import read_body, replay

_IN_URL = (b"%00", b"\x00")
_IN_BODY = (b"\x00", b"%00", b"\\u0000")
_TEXT_TYPES = (b"application/json", b"application/x-www-form-urlencoded", b"text/", b"application/problem+json",
               b"multipart/form-data")
DETAIL = "text must not contain the NUL character (U+0000)"


def _where_in_url(scope: Scope) -> str | None:
    raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
    if any(m in raw_path for m in _IN_URL) or "\x00" in scope.get("path", ""):
        return "path"
    query = scope.get("query_string") or b""
    if any(m in query for m in _IN_URL):
        return "query"
    return None


class NulTextGuard:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = _where_in_url(scope)
        if where is None and scope.get("method") in ("POST", "PUT", "PATCH"):
            content_type = dict(scope.get("headers") or []).get(b"content-type", b"").lower()
            if any(content_type.startswith(t) for t in _TEXT_TYPES):
                body, messages = await read_body(receive)
                if any(m in body for m in _IN_BODY):
                    where = "body"
                receive = replay(messages, receive)
        if where is not None:
            await self._refuse(scope, f"{DETAIL}: found in the {where}")(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _refuse(scope: Scope, detail: str) -> Any:
        state = getattr(scope.get("app"), "state", None)
        hook = getattr(state, "bad_input_response", None)
        response = hook(scope.get("path", ""), detail) if hook is not None else None
        return response if response is not None else problem(422, "Validation failed", detail)
