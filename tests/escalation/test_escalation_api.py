"""Manual flags, staff actions, the action log, projects, reports, metrics, auth, demo loader."""

from __future__ import annotations

import csv
import io

from esc_helpers import OPS, add_person, breach, ny, person

from citystat_common.testing import auth
from escalation import demo
from escalation.scheduler import refresh_gauges

FLAG = {"department_code": "health", "title": "Clinic wait times feel longer than reported",
        "reason": "Frontline staff report 3-hour waits; the indicator samples only mornings", "severity": 2,
        "function_tag": "customer_service"}


async def test_manual_flag_with_reason_is_routed_and_idempotent(harness):
    h = harness
    r = await h.client.post("/tickets", json=FLAG, headers={**OPS, "Idempotency-Key": "flag-1"})
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["source"] == "manual" and t["indicator_id"] is None and t["department_code"] == "HEALTH"
    assert t["assignee"]["name"] == person("HEALTH", "customer_service_officer")
    assert t["reason"].startswith("Frontline") and t["severity"] == 2 and t["opened_by"] == "key ops"
    again = await h.client.post("/tickets", json=FLAG, headers={**OPS, "Idempotency-Key": "flag-1"})
    assert again.status_code == 201 and again.json()["id"] == t["id"]
    assert len(await h.tickets()) == 1
    assert await h.outbox_types(t["id"]) == ["escalation.ticket.opened"]


async def test_writes_need_the_escalation_scope_and_reads_are_open(harness):
    h = harness
    assert (await h.client.post("/tickets", json=FLAG)).status_code == 401
    assert (await h.client.post("/tickets", json=FLAG, headers=auth("analyst"))).status_code == 403
    assert (await h.client.post("/tickets", json={**FLAG, "reason": ""}, headers=OPS)).status_code == 422
    assert (await h.client.post("/tickets", json={**FLAG, "colour": "red"}, headers=OPS)).status_code == 422
    assert (await h.client.get("/tickets")).status_code == 200
    assert (await h.client.get("/tickets/nope")).status_code == 404


async def test_staff_actions_timeline_and_action_log(harness, directory):
    h = harness
    rosa = await add_person(directory, "Rosa Diaz", "Clinic lead")
    t = (await h.client.post("/tickets", json=FLAG, headers=OPS)).json()
    other = (await h.client.post("/tickets", json={**FLAG, "title": "Same problem, second report"}, headers=OPS)).json()
    tid = t["id"]
    assert (await h.client.post(f"/tickets/{tid}/acknowledge", headers=OPS)).json()["status"] == "acknowledged"
    assert (await h.client.post(f"/tickets/{tid}/acknowledge", headers=OPS)).status_code == 409
    h.clock.advance(hours=1)
    r = await h.client.post(f"/tickets/{tid}/start", json={"note": "staffing review"}, headers=OPS)
    assert r.json()["status"] == "in_progress" and r.json()["in_progress_at"]
    r = await h.client.post(f"/tickets/{tid}/notes", json={"text": "Met with the clinic manager"}, headers=OPS)
    assert r.status_code == 201
    r = await h.client.post(f"/tickets/{tid}/actions", json={"description": "Add an afternoon sample",
                                                              "owner": "Stat team", "due_date": "2026-12-15"}, headers=OPS)
    assert r.status_code == 201, r.text
    action = r.json()
    r = await h.client.patch(f"/tickets/{tid}/actions/{action['id']}", json={"status": "done"}, headers=OPS)
    assert r.json()["status"] == "done"
    r = await h.client.post(f"/tickets/{other['id']}/resolve", json={"reason": "duplicate", "duplicate_of": tid},
                            headers=OPS)
    assert r.status_code == 200, r.text
    r = await h.client.post(f"/tickets/{tid}/assign", json={"assignee": {"person_id": rosa, "name": "R. Diaz"},
                                                            "reason": "clinic lead takes it"}, headers=OPS)
    assert r.json()["assignee"]["name"] == "Rosa Diaz"
    h.clock.advance(hours=2)
    r = await h.client.post(f"/tickets/{tid}/resolve", json={"reason": "fixed", "note": "afternoon clinic staffed"},
                            headers=OPS)
    assert r.json()["status"] == "resolved" and r.json()["resolved_at"]
    r = await h.client.post(f"/tickets/{tid}/close", headers=OPS)
    assert r.json()["status"] == "closed" and r.json()["closed_at"]
    d = await h.ticket(tid)
    kinds = [e["kind"] for e in d["timeline"]]
    for k in ("opened", "routed", "acknowledged", "in_progress", "note", "action_added", "action_updated",
              "reassigned", "resolved", "closed"):
        assert k in kinds, k
    assert all(e["actor"] for e in d["timeline"])
    assert d["actions"][0]["owner"] == "Stat team" and d["actions"][0]["status"] == "done"
    assert d["links"] == [{"other_ticket_id": other["id"], "kind": "duplicates", "direction": "incoming"}]
    assert await h.outbox_types(tid) == ["escalation.ticket.opened", "escalation.ticket.acknowledged",
                                         "escalation.ticket.resolved"]


async def test_list_filters_and_pagination(harness):
    h = harness
    await h.deliver(breach(indicator="s1", episode="s1", magnitude=0.6))
    await h.deliver(breach(indicator="w1", episode="w1", department="WATER", tag="staffing", magnitude=0.01))
    await h.client.post("/tickets", json=FLAG, headers=OPS)
    assert len(await h.tickets(department="water")) == 1
    assert len(await h.tickets(cluster="OPERATIONS")) == 2
    assert [t["indicator_id"] for t in await h.tickets(severity=1)] == ["s1"]
    assert len(await h.tickets(status=["open", "acknowledged"])) == 3
    assert len(await h.tickets(level=0)) == 3 and await h.tickets(level=2) == []
    assert len(await h.tickets(assignee=person("WATER", "hr_partner").split()[0].lower())) == 1
    assert len(await h.tickets(source="manual")) == 1
    page = (await h.client.get("/tickets", params={"page_size": 2, "page": 2})).json()
    assert page["total"] == 3 and len(page["items"]) == 1
    assert (await h.client.get("/tickets", params={"severity": 7})).status_code == 422


async def test_promote_to_project_with_milestones_and_rollup(harness):
    h = harness
    await h.deliver(breach(indicator="p1", episode="p1", magnitude=0.3))
    await h.deliver(breach(indicator="p2", episode="p2", magnitude=0.3))
    [t1] = await h.tickets(indicator_id="p1")
    [t2] = await h.tickets(indicator_id="p2")
    body = {"owner": "Desmond Valdez", "goal": "Pothole backlog under 500 by March", "due_date": "2027-03-31",
            "milestones": [{"title": "Second night crew", "due_date": "2026-11-20"}, {"title": "Backlog under 1000"}],
            "link_tickets": [t2["id"]]}
    r = await h.client.post(f"/tickets/{t1['id']}/promote", json=body, headers=OPS)
    assert r.status_code == 201, r.text
    p = r.json()
    assert set(p["tickets"]) == {t1["id"], t2["id"]} and p["owner"] == "Desmond Valdez"
    assert p["rollup"]["milestones_total"] == 2 and p["rollup"]["late_milestones"] == 1
    assert p["rollup"]["health"] == "at_risk" and p["rollup"]["open_tickets"] == 2
    assert (await h.client.post(f"/tickets/{t1['id']}/promote", json=body, headers=OPS)).status_code == 409
    ms = next(m for m in p["milestones"] if m["title"] == "Second night crew")
    r = await h.client.patch(f"/projects/{p['id']}/milestones/{ms['id']}", json={"done": True}, headers=OPS)
    assert r.json()["rollup"]["late_milestones"] == 0 and r.json()["rollup"]["health"] == "on_track"
    listing = (await h.client.get("/projects")).json()
    assert listing["total"] == 1
    assert "escalation.ticket.promoted" in await h.outbox_types(t2["id"])
    assert (await h.ticket(t1["id"]))["project_id"] == p["id"]


async def test_reports_json_csv_and_metrics(harness):
    h = harness
    await h.deliver(breach(indicator="r1", episode="r1", magnitude=0.6))
    await h.deliver(breach(indicator="r2", episode="r2", department="WATER", magnitude=0.3))
    [t1] = await h.tickets(indicator_id="r1")
    h.clock.set(ny(2026, 11, 23, 12, 0))
    await h.client.post(f"/tickets/{t1['id']}/acknowledge", headers=OPS)
    h.clock.set(ny(2026, 11, 25, 12, 0))
    # r1's acknowledgement went stale (back to open); r2 (severity 2, one business day) climbs
    assert len(await h.scheduler().run_once()) == 2
    h.clock.set(ny(2026, 11, 25, 16, 0))
    assert await h.scheduler().run_once() == [f"{t1['id']}:escalated:1"]
    rows = (await h.client.get("/reports/open-tickets", params={"group_by": ["department", "level"]})).json()
    assert {(r["department"], r["level"], r["open"]) for r in rows} == {("STREETS", 1, 1), ("WATER", 1, 1)}
    rows = (await h.client.get("/reports/open-tickets", params={"group_by": "age"})).json()
    assert rows == [{"age": "1-3d", "open": 2, "critical": 1, "oldest_hours": 54.0}]
    times = {r["department"]: r for r in (await h.client.get("/reports/response-times")).json()}
    assert times["STREETS"]["acknowledged"] == 1 and times["STREETS"]["mean_hours_to_acknowledge"] == 2.0
    assert times["WATER"]["acknowledged"] == 0
    esc = (await h.client.get("/reports/escalations")).json()
    assert {(r["month"], r["department"], r["escalations"]) for r in esc} == {("2026-11", "STREETS", 1), ("2026-11", "WATER", 1)}
    r = await h.client.get("/reports/escalations", params={"format": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(r.text)))
    assert parsed[0]["month"] == "2026-11" and parsed[0]["escalations"] == "1"
    async with h.uow() as uow:
        await refresh_gauges(uow, now=h.clock())
    text = (await h.client.get("/metrics")).text
    assert 'citystat_escalation_open_tickets{department="STREETS",level="1",severity="1"} 1.0' in text
    assert 'citystat_escalation_overdue_tickets{department="STREETS"} 1.0' in text
    assert 'citystat_escalation_escalations_total{department="WATER",to_level="1"}' in text
    assert 'citystat_escalation_time_to_ack_seconds_count{department="STREETS"}' in text


async def test_demo_loader_is_idempotent(harness):
    h = harness
    keys = {"ops": "test-key-ops", "admin": "test-key-admin"}
    first = await demo.load_demo(h.client, keys)
    assert "manual flag opened for LIBRARY" in first and person("LIBRARY", "customer_service_officer") in first
    second = await demo.load_demo(h.client, keys)
    assert "demo flag present" in second and "default policy present" in second
    assert len(await h.tickets(source="manual")) == 1
    policy = (await h.client.get("/policies/default")).json()
    assert policy["is_default"] and [lv["level"] for lv in policy["levels"]] == [0, 1, 2, 3]
