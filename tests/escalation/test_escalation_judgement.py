"""Judgement and tickets agree: an override is noted on the open ticket (author, reason, expiry)
and neither resolves it nor opens one; a new red period before staff resolve a ticket is noted
on it ("red again") instead of opening a second, unlinked ticket, under replay too; work in
progress still escalates on the resolution clock."""

from __future__ import annotations

from datetime import timedelta

from esc_helpers import OPS, breach, ny, recovery, status_changed


def iso(dt):
    return dt.isoformat().replace("+00:00", "Z")


async def _kinds(h, tid: str) -> list[str]:
    return [e["kind"] for e in (await h.ticket(tid))["timeline"]]


async def test_override_and_its_end_are_noted_on_the_open_ticket_and_resolve_nothing(harness):
    h = harness
    await h.deliver(breach(episode="ep-1"))
    [t] = await h.tickets()
    until = h.clock() + timedelta(days=14)
    assert await h.deliver(status_changed(status="yellow", until=until, episode="ep-1")) == "processed"
    d = await h.ticket(t["id"])
    [entry] = [e for e in d["timeline"] if e["kind"] == "override"]
    assert entry["text"].startswith("Status set to yellow by Dana Whitfield: Data lag")
    assert entry["actor"] == "Dana Whitfield" and entry["data"]["reason"].startswith("Data lag")
    assert f"until {until.isoformat()}" in entry["text"] and entry["data"]["computed_status"] == "red"
    assert d["status"] == "open" and not d["review_pending"] and d["resolved_at"] is None
    assert d["next_escalation_at"] is not None  # judgement does not stop the clock
    # an override to green is judgement, not a recovery
    await h.deliver(status_changed(status="green", previous="yellow", episode="ep-1"))
    # the override expires: noted, and no second ticket
    await h.deliver(status_changed(status="red", previous="yellow", overridden=False, episode="ep-1"))
    d = await h.ticket(t["id"])
    assert d["status"] == "open" and not d["review_pending"]
    assert [e["kind"] for e in d["timeline"]].count("override") == 2
    assert any(e["kind"] == "override_ended" and "back to red" in e["text"] for e in d["timeline"])
    assert len(await h.tickets()) == 1
    assert await h.outbox_types(t["id"]) == ["escalation.ticket.opened"]


async def test_status_change_without_an_open_ticket_opens_none(harness):
    h = harness
    assert await h.deliver(status_changed(indicator="quiet", status="yellow", episode=None)) == "processed"
    assert await h.deliver(status_changed(indicator="quiet", overridden=False, status="green")) == "processed"
    assert await h.tickets() == []


async def test_red_again_before_staff_resolve_is_noted_on_the_open_ticket_even_under_replay(harness):
    h = harness
    events = [breach(episode="ep-1", period="2026-10"), recovery(episode="ep-1"),
              breach(episode="ep-2", period="2026-11")]
    for e in events:
        assert await h.deliver(e) == "processed"
    [t] = await h.tickets()
    d = await h.ticket(t["id"])
    red = [e for e in d["timeline"] if e["kind"] == "red_again"]
    assert len(red) == 1 and red[0]["text"].startswith("Red again for 2026-11")
    assert d["status"] == "open" and not d["review_pending"] and d["next_escalation_at"] is not None
    assert d["breach_count"] == 2 and d["period"] == "2026-11" and d["episode_id"] == "ep-2"
    # the same events again: the inbox skips them ...
    for e in events:
        assert await h.deliver(e) == "duplicate"
    # ... and re-published under new ids (a replay into a fresh consumer group) they change nothing
    # either: a late breach of the recovered episode is stale, the recovery of a past one too
    await h.deliver(breach(episode="ep-1", period="2026-10"))
    await h.deliver(recovery(episode="ep-1"))
    d = await h.ticket(t["id"])
    assert len(await h.tickets()) == 1 and not d["review_pending"] and d["episode_id"] == "ep-2"
    assert [e["kind"] for e in d["timeline"]].count("red_again") == 1
    # the new episode's recovery is this ticket's recovery
    await h.deliver(recovery(episode="ep-2"))
    d = await h.ticket(t["id"])
    assert d["review_pending"] and d["status"] == "open"
    assert await h.outbox_types(t["id"]) == ["escalation.ticket.opened"]


async def test_a_breach_of_an_indicator_with_an_open_manual_flag_joins_it(harness):
    h = harness
    await h.deliver(status_changed(indicator="m1", overridden=False, status="yellow", previous="green"))
    flag = {"department_code": "STREETS", "title": "Backlog looks wrong", "reason": "crews say so",
            "indicator_id": "m1"}
    r = await h.client.post("/tickets", json=flag, headers=OPS)
    assert r.status_code == 201, r.text
    await h.deliver(breach(indicator="m1", episode="m-ep", period="2026-11"))
    [t] = await h.tickets()
    assert t["id"] == r.json()["id"] and "red_again" in await _kinds(h, t["id"])


async def test_in_progress_tickets_escalate_on_the_resolution_clock(harness):
    h = harness
    await h.deliver(breach(magnitude=0.6))  # severity 1
    [t] = await h.tickets()
    h.clock.set(ny(2026, 11, 23, 11, 0))
    r = await h.client.post(f"/tickets/{t['id']}/start", headers=OPS)
    assert r.status_code == 200, r.text
    # the default policy's level 1 gives a critical ticket 1 business day to be resolved
    assert r.json()["next_escalation_at"] == iso(ny(2026, 11, 24, 11, 0))
    sched = h.scheduler()
    h.clock.set(ny(2026, 11, 24, 10, 59))
    assert await sched.run_once() == []
    h.clock.set(ny(2026, 11, 24, 11, 0))
    assert await sched.run_once() == [f"{t['id']}:escalated:1"]
    d = await h.ticket(t["id"])
    assert d["level"] == 1 and d["status"] == "in_progress"
    assert "not resolved within 1 business days" in d["escalations"][0]["reason"]
    assert d["next_escalation_at"] == iso(ny(2026, 11, 25, 11, 0))  # and it keeps climbing
