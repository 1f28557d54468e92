"""Rate limiting of writes per API key: a token bucket per key, 429 with Retry-After.

In-process (per web worker), which bounds a runaway client on one small machine; a
deployment with many replicas puts a shared limiter (the gateway's) in front as well.

The key is found where a client may send it: the X-API-Key header, ``api_key`` in the query, or
``api_key`` in the body (form, multipart or JSON, as Open311 clients do; the body is read here and
handed on unchanged). Without one, the bucket is the client address's. An app may answer the 429
in its own format: ``app.state.rate_limit_response(path, retry_seconds)`` returning a response
(or None for the default problem+json); intake311 answers Open311 routes with the spec's errors.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from citystat_common.asgi import shared_body
from citystat_common.errors import problem

WRITE_METHODS = {b"POST", b"PUT", b"PATCH", b"DELETE", "POST", "PUT", "PATCH", "DELETE"}


@dataclass
class Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    def __init__(self, rate_per_second: float, burst: int, clock=time.monotonic):  # type: ignore[no-untyped-def]
        self.rate = rate_per_second
        self.burst = burst
        self.clock = clock
        self.buckets: dict[str, Bucket] = {}

    def take(self, key: str) -> float:
        """Take one token; 0.0 when allowed, else the seconds until one is available."""
        now = self.clock()
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) > 100_000:
                self.buckets.clear()  # bound memory against key-spraying clients
            bucket = self.buckets[key] = Bucket(tokens=self.burst, updated=now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate


def _from_pairs(data: bytes) -> bytes | None:
    """``api_key`` of an urlencoded query or form (the first non-empty one, as Open311's parser takes)."""
    for part in data.split(b"&"):
        if part.startswith(b"api_key=") and len(part) > 8:
            return unquote_plus(part[8:].decode("latin-1")).encode("latin-1", "replace")
    return None


_MULTIPART_KEY = re.compile(rb'name="api_key"\r\n(?:[^\r\n]+\r\n)*\r\n([^\r\n]+)\r\n')


def body_api_key(content_type: bytes, body: bytes) -> bytes | None:
    """The ``api_key`` a write carries in its body, or None."""
    kind = content_type.split(b";")[0].strip().lower()
    if kind in (b"application/x-www-form-urlencoded", b"", b"text/plain"):
        return _from_pairs(body)
    if kind == b"multipart/form-data":
        m = _MULTIPART_KEY.search(body)
        return m.group(1) if m else None
    if kind == b"application/json" or kind.endswith(b"+json"):
        try:
            doc: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        key = doc.get("api_key") if isinstance(doc, dict) else None
        return key.encode() if isinstance(key, str) and key else None
    return None


def _client_key(scope: Scope, body_key: bytes | None = None) -> str:
    headers = dict(scope.get("headers") or [])
    raw = headers.get(b"x-api-key") or _from_pairs(scope.get("query_string") or b"") or body_key
    if raw:
        return "key:" + hashlib.sha256(raw).hexdigest()[:16]
    client = scope.get("client") or ("anonymous", 0)
    return f"ip:{client[0]}"


def _key_outside_body(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    return bool(headers.get(b"x-api-key") or _from_pairs(scope.get("query_string") or b""))


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, per_minute: int, burst: int):
        self.app = app
        self.buckets = TokenBuckets(per_minute / 60.0, burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in WRITE_METHODS:
            body_key = None
            if not _key_outside_body(scope):
                # the key may be in the body (Open311's api_key): read it (the body size limit
                # around this middleware still applies) and replay it to the app unchanged
                body, receive = await shared_body(scope, receive)
                headers = dict(scope.get("headers") or [])
                body_key = body_api_key(headers.get(b"content-type", b""), body)
            wait = self.buckets.take(_client_key(scope, body_key))
            if wait > 0:
                retry = max(1, math.ceil(wait))
                await self._too_many(scope, retry)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _too_many(scope: Scope, retry: int) -> Any:
        state = getattr(scope.get("app"), "state", None)
        hook = getattr(state, "rate_limit_response", None)
        response = hook(scope.get("path", ""), retry) if hook is not None else None
        if response is None:
            response = problem(429, "Too many requests", f"write rate limit exceeded; retry in {retry} s")
        response.headers["Retry-After"] = str(retry)
        return response
