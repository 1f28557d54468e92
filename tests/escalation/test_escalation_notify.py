"""Notifications: written with the change, sent after it through the log and a signed webhook,
retried when the receiver fails. The webhook receiver is a real ASGI app."""

from __future__ import annotations

import httpx
import orjson
import sqlalchemy as sa
from esc_helpers import breach, ny, person
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from citystat_common.db import session_factory
from citystat_common.uow import UnitOfWork
from escalation.models import PLUMBING, Notification
from escalation.notifiers import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    LogNotifier,
    WebhookNotifier,
    sign,
    verify,
)
from escalation.scheduler import NotificationDispatcher

SECRET = "s3cret"


def receiver(fail_first: int):
    received: list[dict] = []
    calls = {"n": 0}

    async def hook(request: Request) -> JSONResponse:
        calls["n"] += 1
        body = await request.body()
        if not verify(SECRET, request.headers[TIMESTAMP_HEADER], body, request.headers[SIGNATURE_HEADER]):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        if calls["n"] <= fail_first:
            return JSONResponse({"error": "busy"}, status_code=503)
        received.append(orjson.loads(body))
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    return httpx.ASGITransport(app=app), received, calls


def test_signature_covers_timestamp_and_body():
    sig = sign(SECRET, "1700000000", b'{"a":1}')
    assert verify(SECRET, "1700000000", b'{"a":1}', sig)
    assert not verify(SECRET, "1700000001", b'{"a":1}', sig)
    assert not verify("other", "1700000000", b'{"a":1}', sig)
    assert not verify(SECRET, "1700000000", b'{"a":2}', sig)


async def test_escalation_notifies_through_a_signed_webhook_with_retries(harness):
    h = harness
    await h.deliver(breach(magnitude=0.6))
    h.clock.set(ny(2026, 11, 23, 14, 0))
    await h.scheduler().run_once()
    transport, received, calls = receiver(fail_first=1)
    hook = WebhookNotifier("http://hooks.example/hook", SECRET, transport=transport)
    sessions = session_factory(h.engine)
    async with h.uow() as uow:
        await uow.session.execute(sa.update(Notification).values(channels=["log", "webhook"]))
        await uow.commit()
    dispatcher = NotificationDispatcher(lambda: UnitOfWork(sessions, PLUMBING), {"log": LogNotifier(), "webhook": hook},
                                        clock=h.clock, max_attempts=3)
    # opened -> partner; escalated -> department head, the partner copied: two notifications
    assert await dispatcher.run_once() == 1  # the receiver's first answer is a 503: that one waits for a retry
    rows = await h.rows(sa.select(Notification.status, Notification.attempts, Notification.channels, Notification.last_error))
    pending = [r for r in rows if r[0] == "pending"]
    assert len(pending) == 1 and pending[0][1] == 1 and pending[0][2] == ["webhook"] and "503" in pending[0][3]
    assert await dispatcher.run_once() == 0  # not due yet: backoff
    h.clock.advance(seconds=61)
    assert await dispatcher.run_once() == 1
    assert calls["n"] == 3 and len(received) == 2
    kinds = sorted((m["kind"], m["recipient"]["name"]) for m in received)
    assert kinds == sorted([
        ("opened", person("STREETS", "oit_partner")),
        ("escalated", person("STREETS", "department_head")),
    ])
    [escalated] = [m for m in received if m["kind"] == "escalated"]
    assert escalated["url"].endswith(f"/board/tickets/{escalated['ticket_id']}") and "130" in escalated["miss"]
    statuses = await h.rows(sa.select(Notification.status, Notification.sent_at))
    assert {s for s, _ in statuses} == {"sent"} and all(at is not None for _, at in statuses)
    await hook.aclose()


async def test_a_notification_that_keeps_failing_is_marked_failed(harness):
    h = harness
    await h.deliver(breach(magnitude=0.6))
    transport, received, _ = receiver(fail_first=100)
    hook = WebhookNotifier("http://hooks.example/hook", SECRET, transport=transport)
    async with h.uow() as uow:
        await uow.session.execute(sa.update(Notification).values(channels=["webhook"]))
        await uow.commit()
    sessions = session_factory(h.engine)
    dispatcher = NotificationDispatcher(lambda: UnitOfWork(sessions, PLUMBING), {"webhook": hook}, clock=h.clock,
                                        max_attempts=2)
    await dispatcher.run_once()
    h.clock.advance(minutes=10)
    await dispatcher.run_once()
    h.clock.advance(minutes=10)
    assert await dispatcher.run_once() == 0
    [(status, attempts)] = await h.rows(sa.select(Notification.status, Notification.attempts))
    assert status == "failed" and attempts == 2 and received == []
    await hook.aclose()
