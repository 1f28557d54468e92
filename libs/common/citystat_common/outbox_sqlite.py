"""The outbox relay's claim and mark on SQLite, straight through the driver (citystat_common.db.sqlite_write).

SQLite has one write lock, shared by the api's batches and the worker's relay. The claim was two
transactions (lease the ids, then read the leased rows) and the mark a third, each statement three
or four hops to the driver's thread and back while holding the lock, and the api's batches waited
on it (SQLite's busy handler sleeps 1, 2, 5, 10... ms between tries). Now the claim is one
statement (UPDATE ... RETURNING) and the mark another, each a transaction of three hops.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from citystat_common.db import sqlite_time, sqlite_write, utcnow

# Times are text, as UTCDateTime stores them on SQLite (sqlite_time).
_CLAIM = sa.text("""
UPDATE outbox SET lease_token = :token, lease_until = :until
WHERE id IN (SELECT id FROM outbox WHERE sent_at IS NULL AND (lease_until IS NULL OR lease_until < :now)
             ORDER BY id LIMIT :n)
RETURNING id, event_id, topic, key, event_type, payload
""")
_MARK_SENT = sa.text("""
UPDATE outbox SET sent_at = :now, lease_token = NULL, lease_until = NULL, attempts = attempts + 1
WHERE id IN (SELECT value FROM json_each(:ids))
""")


class Claimed(NamedTuple):
    """A claimed outbox row: what the relay publishes."""

    id: int
    event_id: str
    topic: str
    key: str
    event_type: str
    payload: bytes


async def claim(engine: AsyncEngine, n: int, lease: timedelta) -> list[Claimed]:
    """Up to ``n`` unsent rows not leased by another relay (or whose lease ran out), leased for
    ``lease``, in id order (RETURNING gives no order of its own)."""
    now = utcnow()
    rows = await sqlite_write(engine, _CLAIM, {"token": str(uuid.uuid4()), "now": sqlite_time(now), "n": n,
                                               "until": sqlite_time(now + lease)})
    return sorted((Claimed(*r) for r in rows), key=lambda r: r.id)


async def mark_sent(engine: AsyncEngine, ids: Sequence[int], at: datetime) -> None:
    await sqlite_write(engine, _MARK_SENT, {"now": sqlite_time(at), "ids": orjson.dumps(list(ids)).decode()})
