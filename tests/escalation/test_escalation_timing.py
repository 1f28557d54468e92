"""Escalation on a controllable clock: delays per severity in business hours, acknowledgement,
stale acknowledgement, mutes, restart in the middle, two schedulers at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa
from esc_helpers import OPS, breach, ny, person

from citystat_common.db import create_engine
from escalation.models import PLUMBING, Escalation, Ticket


def iso(dt):
    return dt.isoformat().replace("+00:00", "Z")


async def _open(h, **kw) -> dict:
    await h.deliver(breach(**kw))
    [t] = await h.tickets(indicator_id=kw.get("indicator", "ind-1"))
    return t


async def _levels(h, ticket_id: str) -> list[int]:
    rows = await h.rows(sa.select(Escalation.to_level).where(Escalation.ticket_id == ticket_id).order_by(Escalation.to_level))
    return [r[0] for r in rows]


async def test_not_acknowledged_within_the_delay_climbs_the_chain(harness):
    h = harness
    t = await _open(h, magnitude=0.6)  # severity 1: 4 business hours to acknowledge
    assert t["severity"] == 1
    sched = h.scheduler()
    h.clock.set(ny(2026, 11, 23, 13, 59))
    assert await sched.run_once() == []
    assert (await h.ticket(t["id"]))["level"] == 0
    h.clock.set(ny(2026, 11, 23, 14, 0))
    assert await sched.run_once() == [f"{t['id']}:escalated:1"]
    d = await h.ticket(t["id"])
    assert d["level"] == 1 and d["level_role"] == "department_head"
    [esc] = d["escalations"]
    names = {p["name"] for p in esc["notified"]}
    assert names == {person("STREETS", "department_head"), person("STREETS", "oit_partner")}
    assert "not acknowledged within 4 business hours" in esc["reason"]
    assert await sched.run_once() == []  # nothing twice for the same level
    # level 1 (not resolved): 1 business day for a critical ticket -> Tuesday 14:00
    assert d["next_escalation_at"] == iso(ny(2026, 11, 24, 14, 0))
    h.clock.set(ny(2026, 11, 24, 14, 0))
    await sched.run_once()
    d = await h.ticket(t["id"])
    assert d["level"] == 2 and d["escalations"][-1]["notified"][0]["name"] == person("STREETS", "deputy_mayor")
    assert await _levels(h, t["id"]) == [1, 2]
    types = await h.outbox_types(t["id"])
    assert types == ["escalation.ticket.opened", "escalation.ticket.escalated", "escalation.ticket.escalated"]
    # notifications were recorded for the people told, waiting for the dispatcher
    from escalation.models import Notification

    rows = await h.rows(sa.select(Notification.kind, Notification.recipient_name).where(Notification.ticket_id == t["id"]))
    assert ("escalated", person("STREETS", "deputy_mayor")) in rows and ("opened", person("STREETS", "oit_partner")) in rows


async def test_acknowledged_ticket_does_not_escalate_until_the_acknowledgement_goes_stale(harness):
    h = harness
    t = await _open(h, magnitude=0.6)
    h.clock.set(ny(2026, 11, 23, 11, 0))
    r = await h.client.post(f"/tickets/{t['id']}/acknowledge", json={"note": "looking"}, headers=OPS)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "acknowledged" and r.json()["next_escalation_at"] is None
    # ack timeout: 2 business days -> Wednesday 11:00
    assert r.json()["ack_expires_at"] == iso(ny(2026, 11, 25, 11, 0))
    sched = h.scheduler()
    h.clock.set(ny(2026, 11, 25, 10, 59))
    assert await sched.run_once() == []
    d = await h.ticket(t["id"])
    assert d["level"] == 0 and d["status"] == "acknowledged" and d["escalations"] == []
    h.clock.set(ny(2026, 11, 25, 11, 0))
    assert await sched.run_once() == [f"{t['id']}:reopened"]
    d = await h.ticket(t["id"])
    assert d["status"] == "open" and d["level"] == 0 and d["acknowledged_at"] is None
    assert "ack_stale" in [e["kind"] for e in d["timeline"]]
    # back to open: the level-0 clock restarts, 4 business hours -> 15:00; Thanksgiving is skipped later on
    assert d["next_escalation_at"] == iso(ny(2026, 11, 25, 15, 0))
    h.clock.set(ny(2026, 11, 25, 15, 0))
    await sched.run_once()
    assert (await h.ticket(t["id"]))["level"] == 1


async def test_business_hours_weekends_and_holidays_are_respected(harness):
    h = harness
    h.clock.set(ny(2026, 11, 20, 16, 0))  # Friday 16:00: one business hour left today
    t = await _open(h, magnitude=0.6, indicator="fri", episode="fri")
    assert t["next_escalation_at"] == iso(ny(2026, 11, 23, 11, 0))  # Monday 11:00
    sched = h.scheduler()
    for when in (ny(2026, 11, 21, 12, 0), ny(2026, 11, 22, 23, 0), ny(2026, 11, 23, 10, 59)):
        h.clock.set(when)
        assert await sched.run_once() == []
    h.clock.set(ny(2026, 11, 23, 11, 0))
    assert await sched.run_once() == [f"{t['id']}:escalated:1"]
    # Wednesday before Thanksgiving, 16:00: the holiday and the weekend are not business time
    h.clock.set(ny(2026, 11, 25, 16, 0))
    t2 = await _open(h, magnitude=0.6, indicator="thx", episode="thx")
    assert t2["next_escalation_at"] == iso(ny(2026, 11, 27, 11, 0))  # Friday 11:00
    # a low-severity ticket gets 5 business days
    h.clock.set(ny(2026, 11, 23, 10, 0))
    t3 = await _open(h, magnitude=0.01, indicator="low", episode="low")
    assert t3["severity"] == 4 and t3["next_escalation_at"] == iso(ny(2026, 12, 1, 10, 0))  # Thanksgiving skipped


async def test_severity_change_moves_the_due_time_and_is_in_the_timeline(harness):
    h = harness
    t = await _open(h, magnitude=0.01)  # low: 5 business days
    r = await h.client.post(f"/tickets/{t['id']}/severity", json={"severity": 1, "reason": "affects 911 dispatch"},
                            headers=OPS)
    assert r.status_code == 200, r.text
    assert r.json()["severity"] == 1 and r.json()["next_escalation_at"] == iso(ny(2026, 11, 23, 14, 0))
    entry = [e for e in r.json()["timeline"] if e["kind"] == "severity_changed"][0]
    assert "affects 911 dispatch" in entry["text"] and entry["actor"] == "key ops"
    r = await h.client.post(f"/tickets/{t['id']}/severity", json={"severity": 2}, headers=OPS)
    assert r.status_code == 422  # a written reason is required


async def test_muted_ticket_and_department_hold_escalation_until_the_mute_ends(harness):
    h = harness
    t = await _open(h, magnitude=0.6)
    u = await _open(h, magnitude=0.6, indicator="other", episode="other", department="WATER")
    r = await h.client.post(f"/tickets/{t['id']}/mute", json={"until": iso(ny(2026, 11, 24, 9, 0)), "reason": "vendor fix tonight"},
                            headers=OPS)
    assert r.status_code == 200, r.text
    r = await h.client.post("/mutes", json={"department_code": "WATER", "until": iso(ny(2026, 11, 23, 16, 0)),
                                            "reason": "main break, all hands"}, headers=OPS)
    assert r.status_code == 201, r.text
    sched = h.scheduler()
    h.clock.set(ny(2026, 11, 23, 14, 0))
    assert sorted(await sched.run_once()) == sorted([f"{t['id']}:held", f"{u['id']}:held"])
    assert (await h.ticket(t["id"]))["level"] == 0
    h.clock.set(ny(2026, 11, 23, 16, 0))
    assert await sched.run_once() == [f"{u['id']}:escalated:1"]
    h.clock.set(ny(2026, 11, 24, 9, 0))
    assert await sched.run_once() == [f"{t['id']}:escalated:1"]
    held = [e for e in (await h.ticket(t["id"]))["timeline"] if e["kind"] == "escalation_held"]
    assert held and "vendor fix tonight" in held[0]["text"]


async def test_restart_in_the_middle_keeps_due_times(harness):
    h = harness
    t = await _open(h, magnitude=0.6)
    first_engine = create_engine(h.settings.database_url)
    h.clock.set(ny(2026, 11, 23, 14, 0))
    assert await h.scheduler(first_engine).run_once() == [f"{t['id']}:escalated:1"]
    await first_engine.dispose()  # the worker stops: nothing of the schedule lives in memory
    second_engine = create_engine(h.settings.database_url)
    try:
        restarted = h.scheduler(second_engine)
        h.clock.set(ny(2026, 11, 24, 13, 59))
        assert await restarted.run_once() == []
        h.clock.set(ny(2026, 11, 24, 14, 0))
        assert await restarted.run_once() == [f"{t['id']}:escalated:2"]
    finally:
        await second_engine.dispose()
    assert await _levels(h, t["id"]) == [1, 2]


async def test_two_schedulers_at_once_escalate_each_ticket_once(harness):
    h = harness
    for i in range(24):
        await h.deliver(breach(indicator=f"i{i}", episode=f"e{i}", magnitude=0.6))
    h.clock.set(ny(2026, 11, 23, 14, 0))
    engines = [create_engine(h.settings.database_url) for _ in range(2)]
    try:
        scheds = [h.scheduler(e) for e in engines]
        results = await asyncio.gather(*(s.run_once() for s in scheds for _ in range(2)))
    finally:
        for e in engines:
            await e.dispose()
    outcomes = [o for r in results for o in r]
    assert len(outcomes) == 24 and len(set(outcomes)) == 24
    rows = await h.rows(sa.select(Escalation.ticket_id, Escalation.to_level))
    assert len(rows) == 24 and {lvl for _, lvl in rows} == {1}
    ob = PLUMBING.outbox
    n = await h.rows(sa.select(sa.func.count()).select_from(ob).where(ob.c.event_type == "escalation.ticket.escalated"))
    assert n[0][0] == 24
    levels = await h.rows(sa.select(Ticket.level))
    assert {lvl for (lvl,) in levels} == {1}


async def test_unique_level_guard_rejects_a_second_record(harness):
    """The database guard behind 'never twice for the same level': a second row for the same
    (ticket, level) is refused even if two schedulers both decided to escalate."""
    h = harness
    t = await _open(h, magnitude=0.6)
    h.clock.set(ny(2026, 11, 23, 14, 0))
    await h.scheduler().run_once()
    import pytest
    from sqlalchemy.exc import IntegrityError

    async with h.uow() as uow:
        uow.session.add(Escalation(ticket_id=t["id"], department_code="STREETS", from_level=0, to_level=1,
                                   level_role="department_head", reason="again", notified=[], at=h.clock()))
        with pytest.raises(IntegrityError):
            await uow.flush()
    h.clock.advance(minutes=1)
    assert await h.scheduler().run_once() == []
    assert await _levels(h, t["id"]) == [1]


async def test_demo_scale_makes_the_chain_climb_in_minutes(db_factory, directory, clock):
    from esc_helpers import Harness, esc_settings, make_harness

    from citystat_common.testing import app_client

    settings = esc_settings(db_factory, delay_scale=1 / 60)
    engine, deps, runner, app = await make_harness(settings, clock, directory.transport, "http://directory")
    try:
        async with app_client(app) as client:
            h = Harness(settings=settings, clock=clock, engine=engine, deps=deps, runner=runner, client=client)
            t = await _open(h, magnitude=0.6)
            assert t["next_escalation_at"] == iso(clock() + timedelta(minutes=4))
            clock.advance(minutes=4)
            assert await h.scheduler().run_once() == [f"{t['id']}:escalated:1"]
    finally:
        await deps.directory.aclose()
        await engine.dispose()


async def test_top_level_repeats_reminders_then_stops(harness, directory):
    from datetime import datetime

    h = harness
    await h.feed_directory_changes(directory.database_url)
    t = await _open(h, magnitude=0.6, department="ZOO", indicator="zoo", episode="zoo")
    assert t["level"] == 3 and t["assignee"]["name"] == person("STREETS", "managing_director")
    outcomes = []
    for _ in range(4):
        due = (await h.ticket(t["id"]))["next_escalation_at"]
        if due is None:
            break
        h.clock.set(datetime.fromisoformat(due.replace("Z", "+00:00")))
        outcomes += [o.split(":", 1)[1] for o in await h.scheduler().run_once()]
    assert outcomes == ["reminded", "reminded", "top"]
    d = await h.ticket(t["id"])
    assert d["next_escalation_at"] is None and d["level"] == 3 and d["escalations"] == []
    reminders = [e["text"] for e in d["timeline"] if e["kind"] == "reminder"]
    assert len(reminders) == 2 and person("STREETS", "managing_director") in reminders[0]
