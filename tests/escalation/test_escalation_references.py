"""What a caller names must exist (departments, people, indicators, roles, tickets), and every
state transition that cannot happen is a clear 409/422 naming the field, never a 500."""

from __future__ import annotations

from datetime import timedelta

from esc_helpers import OPS, breach, status_changed

from citystat_common.testing import auth

FLAG = {"department_code": "WATER", "title": "Meter backlog", "reason": "Crews report a growing backlog"}


def iso(dt):
    return dt.isoformat().replace("+00:00", "Z")


def answered(r, status: int, field: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in r.json().get("errors", [])], r.json()


async def test_manual_flags_name_a_known_department_and_indicator(harness):
    h = harness
    answered(await h.client.post("/tickets", json={**FLAG, "department_code": "NOPE"}, headers=OPS), 422,
             "department_code")
    answered(await h.client.post("/tickets", json={**FLAG, "indicator_id": "never-seen"}, headers=OPS), 422,
             "indicator_id")
    answered(await h.client.post("/tickets", json={**FLAG, "indicator_code": "no spaces!"}, headers=OPS), 422,
             "indicator_code")
    answered(await h.client.post("/tickets", json={**FLAG, "indicator_code": "311.STREETS.backlog"}, headers=OPS), 422,
             "indicator_code")
    # an indicator escalation has seen belongs to its department
    await h.deliver(status_changed(indicator="s-vol", department="STREETS", overridden=False, status="yellow"))
    answered(await h.client.post("/tickets", json={**FLAG, "indicator_id": "s-vol"}, headers=OPS), 422, "indicator_id")
    answered(await h.client.post("/tickets", json={**FLAG, "indicator_code": "S-VOL"}, headers=OPS), 422,
             "indicator_code")
    r = await h.client.post("/tickets", json={**FLAG, "department_code": "STREETS", "indicator_code": "S-VOL"},
                            headers=OPS)
    assert r.status_code == 201, r.text
    assert r.json()["indicator_id"] == "s-vol"  # filled in from what escalation knows
    # an unseen code of the right form is accepted (an indicator that never changed status sent no event)
    r = await h.client.post("/tickets", json={**FLAG, "indicator_code": "311.WATER.closed_within_sla"}, headers=OPS)
    assert r.status_code == 201, r.text
    assert r.json()["assignee"] is not None and r.json()["routing_source"] == "directory"


async def test_unknown_department_when_the_directory_is_down_is_refused_not_queued(harness_down):
    r = await harness_down.client.post("/tickets", json=FLAG, headers=OPS)
    answered(r, 422, "department_code")
    assert "could not be asked" in r.json()["detail"]
    assert await harness_down.tickets() == []


async def test_policies_name_known_departments_and_the_roles_of_their_levels(harness):
    h = harness
    policy = (await h.client.get("/policies/default")).json()
    body = {k: policy[k] for k in ("description", "levels", "ack_timeout", "resolve_on_recovery")}
    wizard = [dict(lv) for lv in body["levels"]]
    wizard[1] = {**wizard[1], "role": "wizard"}
    answered(await h.client.put("/policies/p1", json={**body, "levels": wizard}, headers=OPS), 422, "levels.1.role")
    answered(await h.client.put("/policies/p1", json={**body, "departments": ["WATER", "NOPE"]}, headers=OPS), 422,
             "departments.1")
    assert (await h.client.put("/policies/p1", json={**body, "departments": ["WATER"]}, headers=OPS)).status_code == 201
    answered(await h.client.put("/policies/p2", json={**body, "departments": ["WATER"]}, headers=OPS), 409,
             "departments.0")
    assert (await h.client.put("/policies/p1", json={**body, "departments": ["WATER"]}, headers=OPS)).status_code == 200


async def test_mutes_and_assignments_name_known_departments_and_people(harness, directory):
    h = harness
    until = iso(h.clock() + timedelta(days=2))
    answered(await h.client.post("/mutes", json={"department_code": "NOPE", "until": until, "reason": "x"},
                                 headers=OPS), 422, "department_code")
    await h.deliver(breach(indicator="a1", episode="a1"))
    [t] = await h.tickets()
    who = {"reason": "the clinic lead takes it"}
    answered(await h.client.post(f"/tickets/{t['id']}/assign", json={
        **who, "assignee": {"person_id": "p-9", "name": "Rosa Diaz"}}, headers=OPS), 422, "assignee.person_id")
    answered(await h.client.post(f"/tickets/{t['id']}/assign", json={
        **who, "assignee": {"person_id": "p-9", "name": "Rosa Diaz"}, "role": "wizard"}, headers=OPS), 422, "role")
    r = await directory.client.post("/people", json={"name": "Rosa Diaz"}, headers=auth("directory"))
    rosa = r.json()["id"]
    r = await h.client.post(f"/tickets/{t['id']}/assign", json={**who, "assignee": {"person_id": rosa, "name": "Rosa"}},
                            headers=OPS)
    assert r.status_code == 200 and r.json()["assignee"]["name"] == "Rosa Diaz", r.text
    answered(await h.client.post(f"/tickets/{t['id']}/assign", json={
        **who, "assignee": {"person_id": rosa, "name": "Rosa"}}, headers=OPS), 409, "assignee.person_id")
    # people named by the directory's events are known without asking it
    assert await h.feed_directory_changes(directory.database_url) > 12
    async with h.uow() as uow:
        from escalation.models import PersonCopy

        assert await uow.session.get(PersonCopy, rosa) is not None


async def test_impossible_transitions_are_409s_and_named_tickets_422s(harness):
    h = harness
    await h.deliver(breach(indicator="x1", episode="x1"))
    await h.deliver(breach(indicator="x2", episode="x2"))
    [t1] = await h.tickets(indicator_id="x1")
    [t2] = await h.tickets(indicator_id="x2")
    a, b = t1["id"], t2["id"]
    until = iso(h.clock() + timedelta(days=2))
    # a muted ticket can still be acknowledged
    assert (await h.client.post(f"/tickets/{a}/mute", json={"until": until, "reason": "vendor"}, headers=OPS)).status_code == 200
    assert (await h.client.post(f"/tickets/{a}/acknowledge", headers=OPS)).status_code == 200
    answered(await h.client.post(f"/tickets/{a}/acknowledge", headers=OPS), 409, "status")
    answered(await h.client.post(f"/tickets/{a}/links", json={"other_ticket_id": "nope", "kind": "related"},
                                 headers=OPS), 422, "other_ticket_id")
    answered(await h.client.post(f"/tickets/{a}/resolve", json={"reason": "duplicate", "duplicate_of": "nope"},
                                 headers=OPS), 422, "duplicate_of")
    promote = {"owner": "Desmond Valdez", "goal": "Backlog under 500"}
    answered(await h.client.post(f"/tickets/{a}/promote", json={**promote, "link_tickets": ["nope"]}, headers=OPS),
             422, "link_tickets.0")
    assert (await h.client.post(f"/tickets/{b}/promote", json=promote, headers=OPS)).status_code == 201
    answered(await h.client.post(f"/tickets/{b}/promote", json=promote, headers=OPS), 409, "project_id")
    answered(await h.client.post(f"/tickets/{a}/promote", json={**promote, "link_tickets": [b]}, headers=OPS), 409,
             "link_tickets.0")
    assert (await h.client.post(f"/tickets/{a}/resolve", json={"reason": "fixed"}, headers=OPS)).status_code == 200
    answered(await h.client.post(f"/tickets/{a}/resolve", json={"reason": "fixed"}, headers=OPS), 409, "status")
    answered(await h.client.post(f"/tickets/{a}/mute", json={"until": until, "reason": "x"}, headers=OPS), 409, "status")
    answered(await h.client.post(f"/tickets/{a}/start", headers=OPS), 409, "status")
    answered(await h.client.post(f"/tickets/{a}/severity", json={"severity": 1, "reason": "x"}, headers=OPS), 409,
             "status")
    assert (await h.client.post(f"/tickets/{a}/close", headers=OPS)).status_code == 200
    answered(await h.client.post(f"/tickets/{a}/reopen", json={"text": "again"}, headers=OPS), 409, "status")
    answered(await h.client.post(f"/tickets/{a}/close", headers=OPS), 409, "status")
    r = await h.client.post("/mutes", json={"department_code": "STREETS", "until": until, "reason": "storm"}, headers=OPS)
    mute = r.json()["id"]
    assert (await h.client.delete(f"/mutes/{mute}", headers=OPS)).status_code == 200
    answered(await h.client.delete(f"/mutes/{mute}", headers=OPS), 409, "mute_id")
    answered(await h.client.get("/tickets", params={"level": 7}), 422, "level")
    # ids beyond PostgreSQL's integers are the caller's mistake too
    answered(await h.client.delete(f"/mutes/{2**40}", headers=OPS), 422, "mute_id")
    answered(await h.client.patch(f"/tickets/{b}/actions/{2**40}", json={"status": "done"}, headers=OPS), 422,
             "action_id")
