"""Mail that reaches a person, over a real SMTP conversation (the local mail server,
citystat_common.devmail, on a free port): opened, escalated with the previous holder copied,
assigned, acknowledgement about to expire, an action due, recovered pending review; once per event
and recipient whatever replays; digest people get one message when the calendar next opens."""

from __future__ import annotations

import asyncio
import email.policy
from email import message_from_bytes
from pathlib import Path

import pytest
import sqlalchemy as sa
from esc_helpers import (
    OPS,
    Harness,
    breach,
    demo_email,
    esc_settings,
    make_harness,
    ny,
    recovery,
    seed_people,
)

from citystat_common.db import session_factory
from citystat_common.devmail import body_text, serve
from citystat_common.localbroker import free_port
from citystat_common.testing import app_client
from citystat_common.uow import UnitOfWork
from escalation.models import PLUMBING, Notification
from escalation.notifiers import build_notifiers
from escalation.scheduler import NotificationDispatcher

pytestmark = pytest.mark.integration
GORDON = demo_email("STREETS", "stat_partner")
DESMOND = demo_email("STREETS", "department_head")


@pytest.fixture
async def mailbox(tmp_path):
    port, started = free_port(), asyncio.Event()
    task = asyncio.create_task(serve(tmp_path, smtp_port=port, http_port=None, started=started))
    await asyncio.wait_for(started.wait(), 10)
    yield tmp_path, port
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def letters(folder: Path) -> list:
    return [message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in sorted(folder.glob("*.eml"))]


async def _harness(db_factory, directory, clock, port, notify=None):  # type: ignore[no-untyped-def]
    settings = esc_settings(db_factory, smtp_host="127.0.0.1", smtp_port=port, public_url="http://citystat.test:8003")
    engine, deps, runner, app = await make_harness(settings, clock, directory.transport, "http://directory")
    return settings, engine, deps, runner, app


@pytest.fixture
async def mailing(db_factory, directory, clock, mailbox):
    folder, port = mailbox
    settings, engine, deps, runner, app = await _harness(db_factory, directory, clock, port)
    async with app_client(app) as client:
        h = Harness(settings=settings, clock=clock, engine=engine, deps=deps, runner=runner, client=client)
        h.ids = await seed_people(h, directory)  # type: ignore[attr-defined]
        sessions = session_factory(engine)
        h.dispatcher = NotificationDispatcher(lambda: UnitOfWork(sessions, PLUMBING), build_notifiers(settings),  # type: ignore[attr-defined]
                                              clock=clock)
        h.folder = folder  # type: ignore[attr-defined]
        yield h
    await deps.directory.aclose()
    await engine.dispose()


async def test_opened_and_escalated_mail_names_the_miss_and_links_the_ticket(mailing):
    h = mailing
    await h.deliver(breach(indicator="potholes", episode="p1", tag="performance", magnitude=0.6,
                           name="Pothole repair time"))
    [t] = await h.tickets(indicator_id="potholes")
    assert await h.dispatcher.run_once() == 1
    [opened] = letters(h.folder)
    assert opened["To"] == f"Gordon Nakamura <{GORDON}>"
    assert opened["Subject"] == f"[CityStat] New ticket for you: {t['title']}"
    text = body_text(opened)
    assert "Indicator: POTHOLES" in text and "Miss: 130 against a target of 100 (60% worse than the target)" in text
    assert "Next escalation: Monday 23 November 2026, 14:00 EST" in text  # critical: 4 business hours, city time
    assert f"Open the ticket: http://citystat.test:8003/board/tickets/{t['id']}" in text

    h.clock.set(ny(2026, 11, 23, 14, 0))
    await h.scheduler().run_once()
    assert await h.dispatcher.run_once() == 1
    escalated = letters(h.folder)[-1]
    assert escalated["To"] == f"Desmond Valdez <{DESMOND}>"  # the department head's email in the directory
    assert escalated["Cc"] == f"Gordon Nakamura <{GORDON}>"  # the previous holder copied
    assert "Escalated to you (department head)" in body_text(escalated)

    # replays write nothing twice: the same breach again, another scheduler pass, another dispatch
    await h.deliver(breach(indicator="potholes", episode="p1", tag="performance", magnitude=0.6))
    await h.scheduler().run_once()
    await h.dispatcher.run_once()
    ids = [m["Message-ID"] for m in letters(h.folder)]
    assert len(ids) == 2 and len(set(ids)) == 2


async def test_assigned_ack_expiring_action_due_and_review_mail(mailing):
    h = mailing
    await h.deliver(breach(indicator="potholes", episode="p1", tag="performance"))
    [t] = await h.tickets(indicator_id="potholes")
    await h.dispatcher.run_once()
    water = demo_email("WATER", "stat_partner")
    r = await h.client.post(f"/tickets/{t['id']}/assign", headers=OPS,
                            json={"assignee": {"person_id": h.ids[water], "name": "x"}, "reason": "the data is WATER's"})
    assert r.status_code == 200, r.text
    await h.dispatcher.run_once()
    assigned = letters(h.folder)[-1]
    assert water in assigned["To"] and GORDON in assigned["Cc"] and "key ops assigned this ticket to you" in body_text(assigned)

    r = await h.client.post(f"/tickets/{t['id']}/acknowledge", headers=OPS)
    expires = r.json()["ack_expires_at"]
    assert expires == ny(2026, 11, 25, 10, 0).isoformat().replace("+00:00", "Z")
    r = await h.client.post(f"/tickets/{t['id']}/actions", headers=OPS, json={
        "description": "Audit the repair crews", "owner_person_id": h.ids[DESMOND], "due_date": "2026-11-24"})
    assert r.status_code == 201, r.text
    h.clock.set(ny(2026, 11, 24, 9, 0))  # the action's due day
    await h.scheduler().run_once()
    await h.scheduler().run_once()  # once only
    await h.dispatcher.run_once()
    due = letters(h.folder)[-1]
    assert DESMOND in due["To"] and "Audit the repair crews" in body_text(due) and "is due 2026-11-24" in body_text(due)

    h.clock.set(ny(2026, 11, 25, 9, 30))  # half an hour before the acknowledgement expires
    await h.scheduler().run_once()
    await h.scheduler().run_once()
    await h.dispatcher.run_once()
    warning = letters(h.folder)[-1]
    assert "Your acknowledgement is about to expire" in warning["Subject"] and water in warning["To"]
    assert "expires at Wednesday 25 November 2026, 10:00 EST" in body_text(warning)

    await h.deliver(recovery(indicator="potholes", episode="p1"))
    await h.dispatcher.run_once()
    review = letters(h.folder)[-1]
    assert "awaits review" in review["Subject"] and water in review["To"]
    kinds = [k for (k,) in await h.rows(sa.select(Notification.kind).order_by(Notification.id))]
    assert kinds == ["opened", "assigned", "action_due", "ack_expiring", "review"]
    assert len(letters(h.folder)) == 5


async def test_digest_people_get_one_message_when_the_calendar_opens(db_factory, directory, clock, mailbox):
    folder, port = mailbox
    settings, engine, deps, runner, app = await _harness(db_factory, directory, clock, port)
    async with app_client(app) as client:
        h = Harness(settings=settings, clock=clock, engine=engine, deps=deps, runner=runner, client=client)
        await seed_people(h, directory, notify={GORDON: "digest"})
        sessions = session_factory(engine)
        dispatcher = NotificationDispatcher(lambda: UnitOfWork(sessions, PLUMBING), build_notifiers(settings),
                                            clock=clock)
        await h.deliver(breach(indicator="potholes", episode="p1", tag="performance", name="Pothole repair time"))
        await h.deliver(breach(indicator="signals", episode="s1", tag="performance", name="Signal repair time"))
        await dispatcher.run_once()
        assert letters(folder) == []  # Monday 10:00: the calendar is open, but the digest is tomorrow's
        clock.set(ny(2026, 11, 23, 22, 0))
        await dispatcher.run_once()
        assert letters(folder) == []  # closed hours: nothing
        clock.set(ny(2026, 11, 24, 8, 0))  # Tuesday's opening
        await dispatcher.run_once()
        await dispatcher.run_once()
        [digest] = letters(folder)
        assert digest["To"] == f"Gordon Nakamura <{GORDON}>" and "2 ticket updates" in digest["Subject"]
        text = body_text(digest)
        assert "Pothole repair time" in text and "Signal repair time" in text and "/board/tickets/" in text
        statuses = {s for (s,) in await h.rows(sa.select(Notification.status))}
        assert statuses == {"sent"}
    await deps.directory.aclose()
    await engine.dispose()


async def test_a_person_whose_email_arrives_after_the_ticket_still_gets_the_mail(mailing):
    """At start-up the directory's events may trail a breach: the notification is written without
    the email, and the dispatcher finds it in the copy of the directory when it sends. (The senior
    team's own event names the holders' emails too; here it came from a directory that did not.)"""
    from escalation.models import PersonCopy, SeniorTeamCopy

    h = mailing
    sessions = session_factory(h.engine)
    async with sessions() as s:
        await s.execute(sa.update(PersonCopy).where(PersonCopy.email == GORDON).values(email=None))
        for team in (await s.execute(sa.select(SeniorTeamCopy))).scalars():
            team.roles = {role: ({k: v for k, v in p.items() if k != "email"} if p else None)
                          for role, p in (team.roles or {}).items()}
        await s.commit()
    await h.deliver(breach(indicator="potholes", episode="p1", tag="performance"))
    async with sessions() as s:
        [n] = (await s.execute(sa.select(Notification))).scalars().all()
        assert n.recipient_email is None and "email" in n.channels
        await s.execute(sa.update(PersonCopy).where(PersonCopy.person_id == h.ids[GORDON]).values(email=GORDON))
        await s.commit()
    assert await h.dispatcher.run_once() == 1
    [opened] = letters(h.folder)
    assert opened["To"] == f"Gordon Nakamura <{GORDON}>"
    async with sessions() as s:
        assert (await s.execute(sa.select(Notification.recipient_email))).scalar_one() == GORDON
