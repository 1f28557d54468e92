"""The ticket snapshot (escalation.ticket.updated): written to the outbox with every change of a
ticket's status, holder, level or action log, whole, one per transaction, versions growing."""

from __future__ import annotations

from esc_helpers import OPS, add_person, breach, ny, person

UPDATED = "escalation.ticket.updated"


async def test_every_change_of_status_holder_level_and_actions_is_published_whole(harness, directory):
    h = harness
    rosa = await add_person(directory, "Rosa Diaz", "Clinic lead")
    h.clock.set(ny(2026, 11, 23, 9, 0))
    assert await h.deliver(breach(tag="technology", magnitude=0.6)) == "processed"
    [t] = await h.tickets(indicator_id="ind-1")
    tid = t["id"]
    [opened] = await h.outbox_events(tid, UPDATED)
    assert opened.indicator_id == "ind-1" and opened.source == "threshold" and opened.status == "open"
    assert opened.holder is not None and opened.holder.name == person("STREETS", "oit_partner")
    assert opened.level == 0 and opened.level_role == "oit_partner" and opened.last_action is None
    assert opened.changed_at == ny(2026, 11, 23, 9, 0)

    # a note is no change of status, holder, level or action log: no snapshot
    assert (await h.client.post(f"/tickets/{tid}/notes", json={"text": "Looking"}, headers=OPS)).status_code == 201
    assert len(await h.outbox_events(tid, UPDATED)) == 1

    # start (which acknowledges first) is one transaction: one snapshot, its final state
    r = await h.client.post(f"/tickets/{tid}/start", headers=OPS)
    assert r.status_code == 200, r.text
    snaps = await h.outbox_events(tid, UPDATED)
    assert [s.status for s in snaps] == ["open", "in_progress"]

    h.clock.advance(hours=1)
    r = await h.client.post(f"/tickets/{tid}/actions", json={"description": "Replace the failed controller",
                                                              "owner": "Signals crew"}, headers=OPS)
    assert r.status_code == 201, r.text
    r = await h.client.post(f"/tickets/{tid}/assign", json={"assignee": {"person_id": rosa, "name": "R. Diaz"},
                                                            "reason": "the clinic lead takes it"}, headers=OPS)
    assert r.status_code == 200, r.text
    snaps = await h.outbox_events(tid, UPDATED)
    action, assigned = snaps[-2:]
    assert action.last_action == "Replace the failed controller" and action.last_action_at == h.clock()
    assert assigned.holder is not None and assigned.holder.name == "Rosa Diaz"
    assert assigned.last_action == action.last_action

    r = await h.client.post(f"/tickets/{tid}/resolve", json={"reason": "fixed"}, headers=OPS)
    assert r.status_code == 200, r.text
    snaps = await h.outbox_events(tid, UPDATED)
    assert snaps[-1].status == "resolved"
    versions = [s.version for s in snaps]
    assert versions == sorted(set(versions)) and len(versions) == 5  # each change a newer version


async def test_escalation_to_the_next_level_is_published(harness):
    h = harness
    h.clock.set(ny(2026, 11, 23, 9, 0))
    await h.deliver(breach(magnitude=0.6))  # severity 1: 4 business hours to acknowledge
    [t] = await h.tickets(indicator_id="ind-1")
    h.clock.set(ny(2026, 11, 23, 14, 0))
    assert await h.scheduler().run_once() == [f"{t['id']}:escalated:1"]
    last = (await h.outbox_events(t["id"], UPDATED))[-1]
    assert last.level == 1 and last.level_role == "department_head" and last.status == "open"


async def test_a_flag_by_hand_carries_no_indicator(harness):
    h = harness
    r = await h.client.post("/tickets", json={"department_code": "HEALTH", "title": "Clinic waits feel longer",
                                              "reason": "Frontline staff report longer waits than the figures",
                                              "severity": 2, "function_tag": "customer_service"}, headers=OPS)
    assert r.status_code == 201, r.text
    [snap] = await h.outbox_events(r.json()["id"], UPDATED)
    assert snap.indicator_id is None and snap.source == "manual"


async def test_open_tickets_are_published_again_on_request_same_version(harness, monkeypatch):
    """For tickets changed before snapshots existed: every open ticket once more (in batches), the
    resolved ones not, with the version they had; only the performance office's keys or people."""
    from escalation import admin_api

    h = harness
    monkeypatch.setattr(admin_api, "SNAPSHOT_BATCH", 2)  # three open tickets: two batches
    for k in range(4):
        await h.deliver(breach(indicator=f"ind-{k}", episode=f"ep-{k}"))
    tickets = {t["indicator_id"]: t["id"] for t in await h.tickets()}
    r = await h.client.post(f"/tickets/{tickets['ind-3']}/resolve", json={"reason": "fixed"}, headers=OPS)
    assert r.status_code == 200, r.text
    before = {tid: (await h.outbox_events(tid, UPDATED))[-1] for tid in tickets.values()}
    assert (await h.client.post("/ticket-snapshots")).status_code in (401, 403)
    r = await h.client.post("/ticket-snapshots", headers=OPS)
    assert r.status_code == 200 and r.json() == {"published": 3}, r.text
    for indicator, tid in tickets.items():
        snaps = await h.outbox_events(tid, UPDATED)
        if indicator == "ind-3":
            assert len(snaps) == 2 and snaps[-1].status == "resolved"
        else:
            assert len(snaps) == 2 and snaps[-1].version == before[tid].version
            assert snaps[-1].holder == before[tid].holder and snaps[-1].status == "open"
