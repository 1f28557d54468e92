"""Pluggable notifiers. A notification row is written with the change that caused it; the
dispatcher sends it after the commit through each configured channel, retrying with backoff.
``log`` is the default; ``webhook`` POSTs a JSON body signed with HMAC-SHA256; email is a later
plug-in (anything with ``name`` and ``async send(message)``)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx
import orjson
import sqlalchemy as sa

from citystat_common.logging import get_logger
from citystat_common.uow import UnitOfWork
from escalation import metrics
from escalation.config import Settings
from escalation.models import Notification

log = get_logger(__name__)
SIGNATURE_HEADER = "X-CityStat-Signature"
TIMESTAMP_HEADER = "X-CityStat-Timestamp"
LEASE = timedelta(seconds=60)


class Notifier(Protocol):
    name: str

    async def send(self, message: dict[str, Any]) -> None: ...


class LogNotifier:
    name = "log"

    async def send(self, message: dict[str, Any]) -> None:
        recipient = message.get("recipient") or {}
        log.info("notification", channel="log", to=recipient.get("name"), role=message.get("recipient_role"),
                 ticket=message.get("ticket_id"), kind=message.get("kind"), text=message.get("text"))


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookNotifier:
    """POST the message as JSON with ``X-CityStat-Timestamp`` and ``X-CityStat-Signature:
    sha256=HMAC(secret, timestamp + "." + body)``; a non-2xx answer or a network error raises,
    so the dispatcher retries."""

    name = "webhook"

    def __init__(self, url: str, secret: str, *, timeout: float = 2.0, transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], float] = time.time):
        self.url = url
        self.secret = secret
        self.clock = clock
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def send(self, message: dict[str, Any]) -> None:
        body = orjson.dumps(message)
        ts = str(int(self.clock()))
        r = await self._client.post(self.url, content=body, headers={
            "Content-Type": "application/json", TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(self.secret, ts, body),
        })
        if r.status_code >= 300:
            raise RuntimeError(f"webhook answered {r.status_code}")

    async def aclose(self) -> None:
        await self._client.aclose()


def build_notifiers(settings: Settings, *, webhook_transport: httpx.AsyncBaseTransport | None = None) -> dict[str, Notifier]:
    out: dict[str, Notifier] = {"log": LogNotifier()}
    if settings.webhook_url:
        assert settings.webhook_secret  # the settings refuse a webhook without one
        out["webhook"] = WebhookNotifier(settings.webhook_url, settings.webhook_secret, timeout=settings.webhook_timeout,
                                         transport=webhook_transport)
    return out


async def claim(uow: UnitOfWork, *, now: datetime, batch: int = 50) -> list[Notification]:
    stmt = (
        sa.select(Notification).where(Notification.status == "pending", Notification.next_attempt_at <= now)
        .order_by(Notification.id).limit(batch)
    )
    if uow.dialect == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list((await uow.session.execute(stmt)).scalars().all())
    for n in rows:
        n.next_attempt_at = now + LEASE  # a lease: a crashed dispatcher's claim comes back
    return rows


async def dispatch(
    uow_factory: Callable[[], UnitOfWork], notifiers: dict[str, Notifier], *, now: datetime, max_attempts: int = 5
) -> int:
    """Send due notifications; returns how many were fully delivered."""
    async with uow_factory() as uow:
        rows = await claim(uow, now=now)
        await uow.commit()
    delivered = 0
    for n in rows:
        remaining, errors = [], []
        for channel in n.channels or []:
            notifier = notifiers.get(channel)
            if notifier is None:
                errors.append(f"{channel}: not configured")
                metrics.NOTIFICATIONS.labels(channel, "unconfigured").inc()
                continue
            try:
                await notifier.send({**n.body, "notification_id": n.id})
                metrics.NOTIFICATIONS.labels(channel, "sent").inc()
            except Exception as exc:  # noqa: BLE001 - any failure is retried
                remaining.append(channel)
                errors.append(f"{channel}: {exc!r}")
                metrics.NOTIFICATIONS.labels(channel, "failed").inc()
        async with uow_factory() as uow:
            row = await uow.session.get(Notification, n.id)
            assert row is not None
            row.attempts += 1
            row.channels = remaining
            row.last_error = "; ".join(errors) or None
            if not remaining:
                row.status, row.sent_at = "sent", now
                delivered += 1
            elif row.attempts >= max_attempts:
                row.status = "failed"
                log.error("notification_failed", id=row.id, error=row.last_error)
            else:
                row.next_attempt_at = now + timedelta(seconds=min(300, 2 ** row.attempts))
            await uow.commit()
    return delivered
