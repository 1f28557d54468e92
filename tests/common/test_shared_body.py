"""The request body is read from the client once, however many middlewares need it (rate limiting
for Open311's api_key, the NUL guard), inside the body size limit: the app still gets every byte,
an oversize body is still a 413, a NUL still refused, a key in the body still limited."""

import pytest
from starlette.types import Message, Receive, Scope, Send

from citystat_common.asgi import BODY_SCOPE_KEY
from citystat_common.ratelimit import RateLimitMiddleware
from citystat_common.textguard import NulTextGuard
from citystat_common.web import BodySizeLimitMiddleware


def _stack(seen: list[bytes], *, max_bytes: int = 1000, per_minute: int = 600, burst: int = 5):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:  # the app reads the body as any ASGI app does, message by message
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        seen.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    inner = RateLimitMiddleware(NulTextGuard(app), per_minute=per_minute, burst=burst)
    return BodySizeLimitMiddleware(inner, max_bytes=max_bytes)


async def _call(asgi, chunks: list[bytes], *, reads: list[int], length: bool = True) -> tuple[int, Scope]:
    headers = [(b"content-type", b"application/x-www-form-urlencoded")]
    if length:
        headers.append((b"content-length", str(sum(map(len, chunks))).encode()))
    scope: Scope = {"type": "http", "method": "POST", "path": "/requests.json", "raw_path": b"/requests.json",
                    "query_string": b"", "headers": headers, "client": ("127.0.0.1", 5000)}
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive() -> Message:
        reads.append(1)
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    status: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await asgi(scope, receive, send)
    return status[0], scope


async def test_a_body_in_chunks_is_read_from_the_client_once_and_reaches_the_app_whole():
    seen: list[bytes] = []
    reads: list[int] = []
    chunks = [b"api_key=k1&service_code=", b"POTHOLE&description=", b"deep"]
    status, scope = await _call(_stack(seen), chunks, reads=reads)
    assert status == 200
    assert seen == [b"".join(chunks)]
    assert len(reads) == len(chunks)  # both middlewares looked at it; the client was read once
    assert scope[BODY_SCOPE_KEY] == b"".join(chunks)


async def test_what_each_middleware_refuses_it_still_refuses():
    seen: list[bytes] = []
    # over the limit without a Content-Length (chunked): the first read, inside the limit, fails it
    assert (await _call(_stack(seen, max_bytes=10), [b"api_key=k1&", b"description=far too long"],
                        reads=[], length=False))[0] == 413
    assert (await _call(_stack(seen), [b"api_key=k1&description=a%00b"], reads=[]))[0] == 422
    stack = _stack(seen, burst=2)
    answers = [(await _call(stack, [b"api_key=same&description=x"], reads=[]))[0] for _ in range(3)]
    assert answers == [200, 200, 429]  # the key in the body counts, as before
    assert seen == [b"api_key=same&description=x"] * 2


@pytest.mark.parametrize("chunks", [[b""], [b"a=1"], [b"a=", b"", b"1"]])
async def test_the_app_gets_the_same_bytes_with_or_without_the_middlewares(chunks):
    seen: list[bytes] = []
    await _call(_stack(seen), chunks, reads=[])
    assert seen == [b"".join(chunks)]
