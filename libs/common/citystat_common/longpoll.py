"""Long polling: a read that answers when its result changes, not when the client next asks.

The client sends the ETag of the result it holds (``If-None-Match``) and how long it is willing to
wait (RFC 7240 ``Prefer: wait=N``, at most ``MAX_WAIT_SECONDS``). The route reads; while the result
is still the one the client holds, it gives its database connection back, waits for a commit, and
reads again. It answers 200 with the new result, or 304 Not Modified when the wait is over. Without
``Prefer: wait`` the same headers make an ordinary conditional GET (304 at once).

What wakes a waiter: on PostgreSQL every commit that writes events also sends ``NOTIFY
citystat_outbox`` (``UnitOfWork.commit``; the outbox relay listens for it too), and the api keeps
one LISTEN connection for all its waiters. SQLite has no notification between processes, so a
waiter reads again every ``SQLITE_RECHECK_SECONDS``. A notification only says "something was
committed": each waiter reads again and answers only if its own result changed.

The time a request spent waiting is not the server's work: ``MetricsMiddleware`` leaves it out of
the latency histogram (``WAITED_KEY`` in the request's ASGI scope, which every middleware shares; the
request's ``state`` can be one dict for all requests) and writes it apart in the access line.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response

from citystat_common.metrics import WAITED_KEY
from citystat_common.outbox_listen import OutboxListener
from citystat_common.uow import UnitOfWork

MAX_WAIT_SECONDS = 30.0
SQLITE_RECHECK_SECONDS = 0.2
# PostgreSQL reads again now and then even while listening: a commit made while the LISTEN
# connection was being re-established sent its notification to nobody.
LISTENING_RECHECK_SECONDS = 5.0

T = TypeVar("T")


class CommitSignal(OutboxListener):
    """Wakes every waiter at once when a commit that wrote events lands (PostgreSQL), or after
    ``recheck`` seconds (SQLite, or PostgreSQL while its LISTEN connection is down)."""

    recheck = SQLITE_RECHECK_SECONDS
    listening_recheck = LISTENING_RECHECK_SECONDS

    def __init__(self, engine: AsyncEngine):
        super().__init__(engine)
        self._changed = asyncio.Event()

    def _notified(self, *_: Any) -> None:
        # a fresh event per notification: every waiter holding the old one wakes, none misses it
        self._changed.set()
        self._changed = asyncio.Event()

    def token(self) -> asyncio.Event:
        """Taken before a read: a commit during the read sets it, so the wait after returns at once."""
        return self._changed

    async def wait(self, token: asyncio.Event, seconds: float) -> None:
        await self.ensure()
        limit = min(seconds, self.listening_recheck if self.listening else self.recheck)
        try:
            await asyncio.wait_for(token.wait(), timeout=max(0.0, limit))
        except TimeoutError:
            pass


def wait_preference(prefer: str | None) -> float:
    """Seconds asked for by ``Prefer: wait=N`` (RFC 7240), capped at ``MAX_WAIT_SECONDS``; 0 when
    absent or unreadable (a preference the server cannot honour is ignored, as the RFC says)."""
    for pref in (prefer or "").split(","):
        name, _, value = pref.split(";", 1)[0].partition("=")
        if name.strip().lower() != "wait":
            continue
        try:
            seconds = float(value.strip().strip('"'))
        except ValueError:
            return 0.0
        return min(max(seconds, 0.0), MAX_WAIT_SECONDS) if seconds == seconds else 0.0  # NaN -> 0
    return 0.0


def weak_etag(data: bytes) -> str:
    return f'W/"{hashlib.blake2b(data, digest_size=16).hexdigest()}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2): the client holds this result already."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    bare = etag.removeprefix("W/")
    return "*" in tags or any(t.removeprefix("W/") == bare for t in tags)


class LongPoll:
    """A route's view of the long-poll headers (``citystat_common.web.LongPollHeaders``)."""

    def __init__(self, *, held: str | None, wait: float, signal: Callable[[], CommitSignal], scope: MutableMapping[str, Any]):
        self.held = held
        self.wait = wait
        self._signal = signal
        self._scope = scope

    async def read(self, uow: UnitOfWork, read: Callable[[], Awaitable[tuple[T, str]]]) -> tuple[T, str, bool]:
        """Read (``read`` returns the result and its ETag) until the ETag is not the one held or the
        wait is over. Returns the result, its ETag and whether it differs from the one held. Between
        reads the unit's connection goes back to the pool: a thousand waiting clients hold no
        connection. The time spent waiting goes into the request's scope (``WAITED_KEY``)."""
        if not self.held or self.wait <= 0:  # a plain or a conditional GET: one read, no listener
            result, tag = await read()
            return result, tag, not etag_matches(self.held, tag)
        signal = self._signal()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        waited = 0.0
        try:
            while True:
                token = signal.token()
                result, tag = await read()
                if not etag_matches(self.held, tag):
                    return result, tag, True
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return result, tag, False
                await uow.session.close()
                started = loop.time()
                await signal.wait(token, remaining)
                waited += loop.time() - started
        finally:
            self._scope[WAITED_KEY] = waited

    @staticmethod
    def not_modified(tag: str) -> Response:
        return Response(status_code=304, headers={"ETag": tag})


def etag_of_model(model: BaseModel, exclude: Any = None) -> str:
    """The ETag of a response model; ``exclude``: fields computed at read time (an age in hours),
    which are not part of the stored state a client waits on."""
    return weak_etag(model.model_dump_json(exclude=exclude).encode())
