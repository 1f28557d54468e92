"""Pluggable notifiers. A notification row is written with the change that caused it; the
dispatcher sends it after the commit through each configured channel, retrying with backoff.
``log`` is the default; ``webhook`` POSTs a JSON body signed with HMAC-SHA256; ``email``
(escalation.mailer) is on whenever SMTP is configured. Each notification's outcome is committed as
soon as it is sent, so a worker killed mid-batch sends again only what it had not recorded."""

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
from escalation.models import Notification, PersonCopy

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
    from escalation.mailer import EmailNotifier

    out: dict[str, Notifier] = {"log": LogNotifier()}
    if settings.webhook_url:
        assert settings.webhook_secret  # the settings refuse a webhook without one
        out["webhook"] = WebhookNotifier(settings.webhook_url, settings.webhook_secret, timeout=settings.webhook_timeout,
                                         transport=webhook_transport)
    smtp = settings.smtp()
    if smtp is not None:
        out["email"] = EmailNotifier(smtp)
    return out


async def claim(uow: UnitOfWork, *, now: datetime, batch: int = 50, lease: timedelta = LEASE) -> list[Notification]:
    stmt = (
        sa.select(Notification).where(Notification.status == "pending", Notification.next_attempt_at <= now)
        .order_by(Notification.id).limit(batch)
    )
    if uow.dialect == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list((await uow.session.execute(stmt)).scalars().all())
    for n in rows:
        n.next_attempt_at = now + lease  # a lease: a crashed dispatcher's claim comes back
    return rows


async def _email_of(uow_factory: Callable[[], UnitOfWork], person_id: str) -> str | None:
    async with uow_factory() as uow:
        copy = await uow.session.get(PersonCopy, person_id)
        return copy.email.lower() if copy is not None and copy.email else None


def _message(n: Notification) -> dict[str, Any]:
    return {**n.body, "notification_id": n.id, "recipient_email": n.recipient_email, "cc": n.cc or []}


async def _settle(uow_factory: Callable[[], UnitOfWork], n: Notification, *, sent: list[str], errors: list[str],
                  wait_until: datetime | None, now: datetime, max_attempts: int) -> bool:
    """Record one notification's outcome in its own transaction, at once: what was sent is never sent again."""
    async with uow_factory() as uow:
        row = await uow.session.get(Notification, n.id)
        assert row is not None
        if n.recipient_email and not row.recipient_email:
            row.recipient_email = n.recipient_email  # found in the copy of the directory since it was written
        remaining = [c for c in row.channels or [] if c not in sent]
        if sent or errors:
            row.attempts += 1
        row.channels = remaining
        row.last_error = "; ".join(errors) or None
        done = not remaining
        if done:
            row.status, row.sent_at = "sent", now
        elif errors and row.attempts >= max_attempts:
            row.status = "failed"
            log.error("notification_failed", id=row.id, error=row.last_error)
        elif errors:
            row.next_attempt_at = now + timedelta(seconds=min(300, 2 ** row.attempts))
        else:
            row.next_attempt_at = wait_until or now  # only a digest left: it waits for the calendar
        await uow.commit()
    return done


async def dispatch(
    uow_factory: Callable[[], UnitOfWork], notifiers: dict[str, Notifier], *, now: datetime, max_attempts: int = 5,
    lease: timedelta = LEASE,
) -> int:
    """Send due notifications; returns how many were fully delivered. Mail for a digest person
    waits for its ``digest_at`` and then goes out as one message per person."""
    async with uow_factory() as uow:
        rows = await claim(uow, now=now, lease=lease)
        await uow.commit()
    delivered = 0
    digests: dict[str, list[Notification]] = {}
    for n in rows:
        sent: list[str] = []
        errors: list[str] = []
        wait_until = None
        if "email" in (n.channels or []) and not n.recipient_email and n.recipient_id:
            n.recipient_email = await _email_of(uow_factory, n.recipient_id)
        for channel in n.channels or []:
            if channel == "email" and n.digest_at is not None and n.recipient_email:
                if n.digest_at > now:
                    wait_until = n.digest_at
                else:
                    digests.setdefault(n.recipient_email, []).append(n)
                continue
            notifier = notifiers.get(channel)
            if notifier is None:
                errors.append(f"{channel}: not configured")
                metrics.NOTIFICATIONS.labels(channel, "unconfigured").inc()
                continue
            try:
                await notifier.send(_message(n))
                sent.append(channel)
                metrics.NOTIFICATIONS.labels(channel, "sent").inc()
            except Exception as exc:  # noqa: BLE001 - any failure is retried
                errors.append(f"{channel}: {exc!r}")
                metrics.NOTIFICATIONS.labels(channel, "failed").inc()
        if sent or errors or wait_until:
            delivered += await _settle(uow_factory, n, sent=sent, errors=errors, wait_until=wait_until, now=now,
                                       max_attempts=max_attempts)
    for email, group in digests.items():
        delivered += await _send_digest(uow_factory, notifiers, email, group, now=now, max_attempts=max_attempts)
    return delivered


async def _send_digest(uow_factory: Callable[[], UnitOfWork], notifiers: dict[str, Notifier], email: str,
                       group: list[Notification], *, now: datetime, max_attempts: int) -> int:
    mailer: Any = notifiers.get("email")
    first = min(n.digest_at for n in group if n.digest_at is not None)
    errors: list[str] = []
    if mailer is None:
        errors.append("email: not configured")
    else:
        try:
            await mailer.send_digest(email, group[0].recipient_name, [_message(n) for n in group],
                                     key=f"digest:{email}:{first.isoformat()}:{min(n.id for n in group)}")
            metrics.NOTIFICATIONS.labels("email", "sent").inc()
        except Exception as exc:  # noqa: BLE001
            errors.append(f"email: {exc!r}")
            metrics.NOTIFICATIONS.labels("email", "failed").inc()
    delivered = 0
    for n in group:
        delivered += await _settle(uow_factory, n, sent=[] if errors else ["email"], errors=errors, wait_until=None,
                                   now=now, max_attempts=max_attempts)
    return delivered
