"""PostgreSQL: the relay's LISTEN on ``citystat_outbox``, so an event leaves within milliseconds of
its commit instead of at the next poll (polling stays as the fallback, and is all SQLite has)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from citystat_common.db import OUTBOX_NOTIFY_CHANNEL
from citystat_common.logging import get_logger

log = get_logger(__name__)

LISTEN_RETRY_SECONDS = 10.0


class OutboxListener:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self.wake = asyncio.Event()
        self._conn: Any = None
        self._retry_at = 0.0

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def ensure(self) -> None:
        """LISTEN on a dedicated connection (outside the pool, never in a transaction, so
        notifications arrive at once); on failure keep polling and try again later."""
        if self.engine.dialect.name != "postgresql" or self.listening:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._retry_at:
            return
        self._retry_at = loop.time() + LISTEN_RETRY_SECONDS
        import asyncpg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = None
        try:
            conn = await asyncpg.connect(url, timeout=5)
            await conn.add_listener(OUTBOX_NOTIFY_CHANNEL, self._notified)
            self._conn = conn
        except Exception as exc:  # noqa: BLE001 - polling still works
            log.warning("outbox_listen_failed", error=repr(exc))
            if conn is not None:
                conn.terminate()

    def _notified(self, *_: Any) -> None:
        self.wake.set()

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await asyncio.wait_for(conn.close(), timeout=5)
            except Exception:  # noqa: BLE001 - a connection the database already dropped
                conn.terminate()


async def wait_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    """Sleep until ``stop`` or ``wake`` is set, or ``seconds`` pass."""
    if stop.is_set() or wake.is_set():
        return
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
