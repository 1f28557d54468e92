"""Inputs at the edges: every one answers a clear 4xx problem naming the field, never a 500,
on SQLite and PostgreSQL (which refuses NUL characters in text)."""

from datetime import UTC, datetime, timedelta

import pytest

from citystat_common.demo import directory_rows
from citystat_common.testing import auth

W = auth("directory")
FAR_PAST = "0001-01-01T00:00:00+05:00"
FAR_FUTURE = "9999-12-31T23:00:00-05:00"


@pytest.fixture
async def seeded(client):
    r = await client.post("/import", json={"rows": directory_rows()}, headers=W)
    assert r.status_code == 200, r.text
    r = await client.post("/people", json={"name": "Edge Case", "title": "Tester"}, headers=W)
    assert r.status_code == 201, r.text
    return r.json()


def _problem(r, status, field, *, nul=False):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    if nul and "NUL character" in r.json()["detail"]:
        return  # refused at the door for every route (citystat_common.textguard): it says where, not which field
    fields = [e["field"] for e in r.json().get("errors", [])]
    assert field in fields, r.json()


def _cases(pid):
    nul = "a\x00b"
    return [
        # datetimes outside the plausible range, in every place one is taken
        ("GET", "/departments/FIRE/senior-team", {"params": {"at": FAR_PAST}}, "at"),
        ("GET", "/departments/FIRE/senior-team", {"params": {"at": FAR_FUTURE}}, "at"),
        ("GET", "/routing", {"params": {"department": "FIRE", "function": "staffing", "at": FAR_PAST}}, "at"),
        ("PUT", "/departments/FIRE/senior-team/hr_partner", {"json": {"person_id": pid, "starts_at": FAR_PAST}}, "starts_at"),
        ("PUT", "/departments/FIRE/senior-team/hr_partner", {"json": {"person_id": pid, "starts_at": FAR_FUTURE}}, "starts_at"),
        ("PUT", "/clusters/SAFETY/deputy-mayor", {"json": {"person_id": pid, "starts_at": FAR_FUTURE}}, "starts_at"),
        ("PUT", "/managing-director", {"json": {"person_id": pid, "starts_at": FAR_PAST}}, "starts_at"),
        # an appointment years ahead is a typo, not a plan
        ("PUT", "/departments/FIRE/senior-team/hr_partner",
         {"json": {"person_id": pid, "starts_at": (datetime.now(UTC) + timedelta(days=800)).isoformat()}}, "starts_at"),
        ("PUT", "/departments/FIRE/senior-team/hr_partner", {"json": {"person_id": pid, "starts_at": "2026-03-01T09:00:00"}}, "starts_at"),
        ("GET", "/departments/FIRE/senior-team", {"params": {"at": "2026-03-01T09:00:00"}}, "at"),
        # NUL and control characters in path, query and body
        ("GET", "/departments/A%00B", {}, "code"),
        ("GET", "/departments/A%00B/senior-team", {}, "code"),
        ("GET", "/clusters/A%00B", {}, "code"),
        ("GET", "/people/a%00b", {}, "person_id"),
        ("GET", "/departments", {"params": {"q": nul}}, "q"),
        ("GET", "/departments", {"params": {"cluster": nul}}, "cluster"),
        ("GET", "/people", {"params": {"q": nul}}, "q"),
        ("GET", "/assignments", {"params": {"person_id": nul}}, "person_id"),
        ("GET", "/assignments", {"params": {"department": nul}}, "department"),
        ("GET", "/audit", {"params": {"entity": nul}, "headers": auth("staff")}, "entity"),
        ("GET", "/audit", {"params": {"entity_id": nul}, "headers": auth("staff")}, "entity_id"),
        ("GET", "/routing", {"params": {"department": nul, "function": "staffing"}}, "department"),
        ("DELETE", "/departments/FIRE/senior-team/hr_partner", {"params": {"reason": nul}}, "reason"),
        ("POST", "/people", {"json": {"name": nul}}, "name"),
        ("POST", "/people", {"json": {"name": "Bell\x07 Ringer"}}, "name"),
        ("POST", "/people", {"json": {"name": "X", "title": nul}}, "title"),
        ("PATCH", f"/people/{pid}", {"json": {"title": nul}}, "title"),
        ("POST", "/clusters", {"json": {"code": "NULC", "name": nul}}, "name"),
        ("PATCH", "/clusters/SAFETY", {"json": {"name": nul}}, "name"),
        ("POST", "/departments", {"json": {"code": "NULD", "name": nul}}, "name"),
        ("PATCH", "/departments/FIRE", {"json": {"name": nul}}, "name"),
        ("PUT", "/departments/FIRE/senior-team/hr_partner", {"json": {"person_id": nul}}, "person_id"),
        ("PUT", "/departments/FIRE/senior-team/hr_partner", {"json": {"person_id": pid, "reason": nul}}, "reason"),
        # required values sent as null
        ("PATCH", f"/people/{pid}", {"json": {"name": None}}, "name"),
        ("PATCH", f"/people/{pid}", {"json": {"active": None}}, "active"),
        # unknown names and bad emails
        ("PUT", "/departments/FIRE/senior-team/boss", {"json": {"person_id": pid}}, "role"),
        ("DELETE", "/departments/FIRE/senior-team/boss", {}, "role"),
        ("GET", "/assignments", {"params": {"role": "boss"}}, "role"),
        ("POST", "/people", {"json": {"name": "X", "email": "two@@at.example"}}, "email"),
        ("POST", "/people", {"json": {"name": "X", "email": "a" * 300 + "@city.example.gov"}}, "email"),
        ("PATCH", f"/people/{pid}", {"json": {"email": "nope"}}, "email"),
        ("POST", "/departments", {"json": {"code": "É/É", "name": "A slash"}}, "code"),
        ("POST", "/people", {"json": {"name": "x" * 201}}, "name"),
    ]


CASE_IDS = [f"{i}-{c[0]}-{c[3]}" for i, c in enumerate(_cases("p"))]


@pytest.mark.parametrize("index", range(len(CASE_IDS)), ids=CASE_IDS)
async def test_edge_input_is_a_clear_422(client, seeded, index):
    method, path, kw, field = _cases(seeded["id"])[index]
    headers = kw.pop("headers", W)
    r = await client.request(method, path, headers=headers, **kw)
    _problem(r, 422, field, nul="%00" in path or r"\x00" in repr(kw))


async def test_unicode_and_long_strings_that_are_valid_are_kept(client, seeded):
    name = "Zoë Ångström-Nguyễn 李小龍"
    r = await client.post("/people", json={"name": name, "title": "Ü" * 200}, headers=W)
    assert r.status_code == 201, r.text
    assert (await client.get(f"/people/{r.json()['id']}")).json()["name"] == name
    # an unknown but well-formed or over-long code is simply not found
    r = await client.get("/departments/" + "A" * 5000)
    _problem(r, 404, "department")


async def test_a_past_assignment_before_the_current_one_is_a_conflict(client, seeded):
    past = (datetime.now(UTC) - timedelta(days=3650)).isoformat()
    r = await client.put("/departments/FIRE/senior-team/hr_partner", json={"person_id": seeded["id"], "starts_at": past}, headers=W)
    _problem(r, 409, "starts_at")


async def test_between_the_current_and_a_scheduled_assignment_is_a_conflict(client, seeded):
    soon = datetime.now(UTC) + timedelta(days=20)
    r = await client.put(
        "/departments/FIRE/senior-team/hr_partner", json={"person_id": seeded["id"], "starts_at": soon.isoformat()}, headers=W
    )
    assert r.status_code == 200, r.text
    other = (await client.post("/people", json={"name": "Other"}, headers=W)).json()
    earlier = (soon - timedelta(days=5)).isoformat()
    r = await client.put("/departments/FIRE/senior-team/hr_partner", json={"person_id": other["id"], "starts_at": earlier}, headers=W)
    _problem(r, 409, "starts_at")


@pytest.mark.parametrize(
    "method,path,body,field",
    [
        ("PUT", "/departments/FIRE/senior-team/hr_partner", {"person_id": "no-such-person"}, "person_id"),
        ("PUT", "/clusters/SAFETY/deputy-mayor", {"person_id": "no-such-person"}, "person_id"),
        ("PUT", "/managing-director", {"person_id": "no-such-person"}, "person_id"),
        ("POST", "/departments", {"code": "ZZ", "name": "Z", "cluster": "NOWHERE"}, "cluster"),
        ("PATCH", "/departments/FIRE", {"cluster": "NOWHERE"}, "cluster"),
    ],
)
async def test_a_reference_to_nothing_is_a_422_naming_the_field(client, seeded, method, path, body, field):
    r = await client.request(method, path, json=body, headers=W)
    _problem(r, 422, field)
    assert "NOWHERE" in r.text or "no-such-person" in r.text


async def test_an_inactive_person_cannot_be_assigned(client, seeded):
    r = await client.patch(f"/people/{seeded['id']}", json={"active": False}, headers=W)
    assert r.status_code == 200, r.text
    r = await client.put("/departments/FIRE/senior-team/hr_partner", json={"person_id": seeded["id"]}, headers=W)
    _problem(r, 422, "person_id")
