"""The shape of the platform's pure ASGI middlewares: HTTP requests go through ``handle``;
anything else (lifespan, websockets) passes straight to the app. And the request body, read once.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Where the first middleware that needs the whole body (rate limiting: the Open311 api_key; the NUL
# guard) keeps it, so the next one and the route take it from the scope instead of reading and
# replaying it again (each read was a list of messages and a replaying receive per middleware).
BODY_SCOPE_KEY = "citystat.body"


class HttpMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


async def read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The whole body, and the messages that carried it (to hand on to the app as they came)."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    if len(messages) == 1:
        return messages[0].get("body", b""), messages
    return b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request"), messages


def replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that hands the app the messages already read, then the rest as they come."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


async def shared_body(scope: Scope, receive: Receive) -> tuple[bytes, Receive]:
    """The request's whole body, read from the client once per request: the first caller reads it
    (through ``receive``, so a body size limit around it still counts every byte), keeps it in the
    scope and gets a receive that replays it to the app; a later caller, given that receive, gets
    the body from the scope and the receive unchanged (the messages are still to be replayed)."""
    body = scope.get(BODY_SCOPE_KEY)
    if body is not None:
        return body, receive
    body, messages = await read_body(receive)
    scope[BODY_SCOPE_KEY] = body
    return body, replay(messages, receive)
