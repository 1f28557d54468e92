"""Rate limiting of writes per API key: a token bucket per key, 429 with Retry-After.

In-process (per web worker), which bounds a runaway client on one small machine; a
deployment with many replicas puts a shared limiter (the gateway's) in front as well.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

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


def _client_key(scope: Scope) -> str:
    headers = dict(scope.get("headers") or [])
    raw = headers.get(b"x-api-key")
    if raw is None:
        # Open311 clients may send api_key in the query string
        for part in (scope.get("query_string") or b"").split(b"&"):
            if part.startswith(b"api_key="):
                raw = part[8:]
                break
    if raw:
        return "key:" + hashlib.sha256(raw).hexdigest()[:16]
    client = scope.get("client") or ("anonymous", 0)
    return f"ip:{client[0]}"


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, per_minute: int, burst: int):
        self.app = app
        self.buckets = TokenBuckets(per_minute / 60.0, burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in WRITE_METHODS:
            wait = self.buckets.take(_client_key(scope))
            if wait > 0:
                retry = max(1, math.ceil(wait))
                response = problem(429, "Too many requests", f"write rate limit exceeded; retry in {retry} s")
                response.headers["Retry-After"] = str(retry)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
