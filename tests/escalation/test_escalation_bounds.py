"""Inputs at the edges: every time, date and duration escalation accepts has a plausible range
and a clear 422 naming the field (never a 500, never 'mute until 2099')."""

from __future__ import annotations

from datetime import timedelta

from esc_helpers import OPS, breach

from escalation.limits import MUTE_HORIZON_DAYS

FLAG = {"department_code": "WATER", "title": "Meter backlog", "reason": "Crews report a growing backlog"}


def iso(dt):
    return dt.isoformat().replace("+00:00", "Z")


def refused(r, field: str) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in r.json().get("errors", [])], r.json()


async def _ticket(h) -> str:
    await h.deliver(breach(indicator="b1", episode="b1"))
    [t] = await h.tickets(indicator_id="b1")
    return t["id"]


async def test_mutes_end_in_the_future_within_the_horizon(harness):
    h = harness
    tid = await _ticket(h)
    now = h.clock()
    bad = ["2099-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00",
           iso(now - timedelta(minutes=1)), iso(now + timedelta(days=MUTE_HORIZON_DAYS, minutes=1)),
           "2026-11-24T10:00:00"]  # naive: which zone?
    for until in bad:
        refused(await h.client.post(f"/tickets/{tid}/mute", json={"until": until, "reason": "x"}, headers=OPS), "until")
        refused(await h.client.post("/mutes", json={"department_code": "STREETS", "until": until, "reason": "x"},
                                    headers=OPS), "until")
    ok = iso(now + timedelta(days=MUTE_HORIZON_DAYS - 1))
    r = await h.client.post(f"/tickets/{tid}/mute", json={"until": ok, "reason": "vendor"}, headers=OPS)
    assert r.status_code == 200, r.text
    r = await h.client.post("/mutes", json={"department_code": "STREETS", "until": ok, "reason": "storm"}, headers=OPS)
    assert r.status_code == 201, r.text


async def test_due_dates_of_actions_projects_and_milestones_are_plausible(harness):
    h = harness
    tid = await _ticket(h)
    for due in ("2099-01-01", "0001-01-01", "9999-12-31", "2024-01-01"):
        body = {"description": "Add a crew", "owner": "Stat team", "due_date": due}
        refused(await h.client.post(f"/tickets/{tid}/actions", json=body, headers=OPS), "due_date")
    r = await h.client.post(f"/tickets/{tid}/actions", json={"description": "Add a crew", "owner": "Stat team",
                                                             "due_date": "2026-12-15"}, headers=OPS)
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    refused(await h.client.patch(f"/tickets/{tid}/actions/{aid}", json={"due_date": "2099-01-01"}, headers=OPS),
            "due_date")
    promote = {"owner": "Desmond Valdez", "goal": "Backlog under 500"}
    refused(await h.client.post(f"/tickets/{tid}/promote", json={**promote, "due_date": "2099-03-31"}, headers=OPS),
            "due_date")
    refused(await h.client.post(f"/tickets/{tid}/promote", json={
        **promote, "milestones": [{"title": "Night crew", "due_date": "2099-01-01"}]}, headers=OPS), "milestones.0.due_date")
    r = await h.client.post(f"/tickets/{tid}/promote", json={**promote, "due_date": "2027-03-31",
                                                             "milestones": [{"title": "Night crew"}]}, headers=OPS)
    assert r.status_code == 201, r.text
    p = r.json()
    refused(await h.client.patch(f"/projects/{p['id']}", json={"due_date": "2099-01-01"}, headers=OPS), "due_date")
    refused(await h.client.post(f"/projects/{p['id']}/milestones", json={"title": "Later", "due_date": "2099-01-01"},
                                headers=OPS), "due_date")
    mid = p["milestones"][0]["id"]
    refused(await h.client.patch(f"/projects/{p['id']}/milestones/{mid}", json={"due_date": "9999-12-31"}, headers=OPS),
            "due_date")


async def test_policy_durations_are_at_most_about_a_year(harness):
    h = harness
    policy = (await h.client.get("/policies/default")).json()
    body = {k: policy[k] for k in ("description", "departments", "levels", "ack_timeout", "resolve_on_recovery")}
    levels = [dict(lv) for lv in body["levels"]]
    levels[0] = {**levels[0], "delays": {**levels[0]["delays"], "1": {"amount": 10_000, "unit": "business_days"}}}
    refused(await h.client.put("/policies/slow", json={**body, "levels": levels}, headers=OPS), "levels.0.delays.1")
    refused(await h.client.put("/policies/slow", json={**body, "ack_timeout": {"amount": 400, "unit": "calendar_days"}},
                               headers=OPS), "ack_timeout")
    ok = {**body, "ack_timeout": {"amount": 30, "unit": "calendar_days"}}
    assert (await h.client.put("/policies/slow", json=ok, headers=OPS)).status_code == 201
