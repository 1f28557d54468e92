"""``Idempotency-Key`` on POSTs that create things: the same key returns the same response.

The stored response is written in the same transaction as the thing it created, so a
retry after a crash either finds both or neither.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

import orjson
import sqlalchemy as sa
from fastapi import Request, Response
from pydantic import BaseModel

from citystat_common.db import utcnow
from citystat_common.errors import Conflict, Invalid
from citystat_common.uow import UnitOfWork


def request_fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def check_key(key: str | None) -> str | None:
    if key is None or key == "":
        return None
    if len(key) > 200 or not key.isprintable():
        raise Invalid("Idempotency-Key must be 1-200 printable characters", field="Idempotency-Key")
    return key


async def replayed(uow: UnitOfWork, *, key: str | None, scope: str, fingerprint: str) -> Response | None:
    if not key:
        return None
    t = uow.tables.idempotency
    row = (await uow.session.execute(sa.select(t).where(t.c.key == key, t.c.scope == scope))).first()
    if row is None:
        return None
    if row.request_hash != fingerprint:
        raise Conflict("this Idempotency-Key was used with a different request body", field="Idempotency-Key")
    return Response(row.body, status_code=row.status_code, media_type=row.media_type, headers={"Idempotent-Replay": "true"})


async def remember(
    uow: UnitOfWork, *, key: str | None, scope: str, fingerprint: str, status_code: int, body: bytes, media_type: str
) -> None:
    if not key:
        return
    await uow.insert(uow.tables.idempotency, [{
        "key": key, "scope": scope, "request_hash": fingerprint, "status_code": status_code, "body": body,
        "media_type": media_type, "created_at": utcnow(),
    }])


async def create_once(
    uow: UnitOfWork, request: Request, *, key: str | None, scope: str, build: Callable[[], Awaitable[BaseModel]]
) -> Response:
    """Run a creation once per Idempotency-Key: the 201 response is stored with the change and
    committed with it; the same key with the same body replays it, with another body is a 409."""
    key = check_key(key)
    fingerprint = request_fingerprint(await request.body())
    if (previous := await replayed(uow, key=key, scope=scope, fingerprint=fingerprint)) is not None:
        return previous
    model = await build()
    body = orjson.dumps(model.model_dump(mode="json"))
    await remember(uow, key=key, scope=scope, fingerprint=fingerprint, status_code=201, body=body,
                   media_type="application/json")
    await uow.commit()
    return Response(body, status_code=201, media_type="application/json")
