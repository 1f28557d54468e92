"""Directory API through httpx against the app, on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest

from citystat_common.demo import directory_rows
from citystat_common.testing import auth

W = auth("directory")


async def _seed(client):
    r = await client.post("/import", json={"rows": directory_rows()}, headers=W)
    assert r.status_code == 200, r.text
    return r.json()


async def _person(client, name="Ada Lovelace", email=None):
    body = {"name": name, "title": "Analyst"}
    if email:
        body["email"] = email
    r = await client.post("/people", json=body, headers=W)
    assert r.status_code == 201, r.text
    return r.json()


async def test_import_demo_city_and_route_technology(client):
    report = await _seed(client)
    assert report["ok"] and report["departments"] == 12 and report["clusters"] == 4
    r = await client.get("/routing", params={"department": "STREETS", "function": "technology"})
    assert r.status_code == 200
    body = r.json()
    expected = next(
        row["person_name"] for row in directory_rows() if row["department_code"] == "STREETS" and row["role"] == "oit_partner"
    )
    assert body["responsible"]["name"] == expected
    assert body["role"] == "oit_partner" and not body["fallback"]
    assert [c["role"] for c in body["chain"]] == ["oit_partner", "department_head", "deputy_mayor", "managing_director"]
    assert all(c["person"] for c in body["chain"])


@pytest.mark.parametrize(
    "function,role",
    [("technology", "oit_partner"), ("staffing", "hr_partner"), ("spending", "budget_partner"),
     ("customer_service", "customer_service_officer"), ("performance", "stat_partner")],
)
async def test_routing_maps_each_function_to_its_partner(client, function, role):
    await _seed(client)
    r = await client.get("/routing", params={"department": "WATER", "function": function})
    want = next(x["person_name"] for x in directory_rows() if x["department_code"] == "WATER" and x["role"] == role)
    assert r.json()["responsible"]["name"] == want


async def test_routing_vacant_partner_falls_back_to_head(client):
    await _seed(client)
    r = await client.delete("/departments/PARKS/senior-team/hr_partner", headers=W)
    assert r.status_code == 204
    body = (await client.get("/routing", params={"department": "PARKS", "function": "staffing"})).json()
    head = next(x["person_name"] for x in directory_rows() if x["department_code"] == "PARKS" and x["role"] == "department_head")
    assert body["fallback"] is True and body["responsible_role"] == "department_head"
    assert body["responsible"]["name"] == head and "vacant" in body["fallback_reason"]


async def test_routing_unknown_department_and_function(client):
    r = await client.get("/routing", params={"department": "NOPE", "function": "technology"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = await client.get("/routing", params={"department": "STREETS", "function": "astrology"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "function"


async def test_senior_team_history_at_time(client):
    await _seed(client)
    old = (await client.get("/departments/FIRE/senior-team")).json()
    old_head = next(m for m in old["members"] if m["role"] == "department_head")["person"]
    before = datetime.now(UTC)
    new = await _person(client, "Grace Hopper")
    r = await client.put("/departments/FIRE/senior-team/department_head", json={"person_id": new["id"], "reason": "appointed"}, headers=W)
    assert r.status_code == 200, r.text
    now_team = (await client.get("/departments/FIRE/senior-team")).json()
    assert next(m for m in now_team["members"] if m["role"] == "department_head")["person"]["name"] == "Grace Hopper"
    then = (await client.get("/departments/FIRE/senior-team", params={"at": before.isoformat()})).json()
    assert next(m for m in then["members"] if m["role"] == "department_head")["person"]["id"] == old_head["id"]
    hist = (await client.get("/assignments", params={"department": "FIRE", "role": "department_head"})).json()
    assert hist["total"] == 2 and hist["items"][1]["ends_at"] is not None and hist["items"][0]["ends_at"] is None


async def test_overlapping_assignment_is_rejected(client):
    await _seed(client)
    p = await _person(client)
    past = (datetime.now(UTC) - timedelta(days=3650)).isoformat()
    r = await client.put("/departments/FIRE/senior-team/hr_partner", json={"person_id": p["id"], "starts_at": past}, headers=W)
    assert r.status_code == 409
    assert r.json()["errors"][0]["field"] == "starts_at"


@pytest.mark.parametrize(
    "path,body,field,status",
    [
        ("/departments", {"code": "ZZ", "name": "Z", "cluster": "NOWHERE"}, "cluster", 422),
        ("/departments", {"code": "bad/code", "name": "Z"}, "code", 422),
        ("/people", {"name": "X", "email": "not-an-email"}, "email", 422),
        ("/people", {"name": "X", "phone": "call me"}, "phone", 422),
        ("/people", {"name": ""}, "name", 422),
        ("/departments", {"code": "STREETS", "name": "Dup"}, "code", 409),
        ("/people", {"name": "Dup", "email": "hector.moreau@city.example.gov"}, "email", 409),
    ],
)
async def test_validation_errors_name_the_field(client, path, body, field, status):
    await _seed(client)
    r = await client.post(path, json=body, headers=W)
    assert r.status_code == status, r.text
    problem = r.json()
    assert problem["status"] == status and problem["title"]
    assert any(e["field"] == field for e in problem["errors"]), problem


async def test_unknown_person_assignment(client):
    await _seed(client)
    r = await client.put("/departments/FIRE/senior-team/hr_partner", json={"person_id": "nobody"}, headers=W)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "person_id"


WRITE_ROUTES = [
    ("POST", "/clusters", {"code": "NEWC", "name": "New"}),
    ("PATCH", "/clusters/SAFETY", {"name": "Safety"}),
    ("POST", "/departments", {"code": "NEWD", "name": "New"}),
    ("PATCH", "/departments/FIRE", {"name": "Fire"}),
    ("DELETE", "/departments/LIBRARY", None),
    ("POST", "/people", {"name": "New Person"}),
    ("PUT", "/managing-director", {"person_id": "x"}),
    ("PUT", "/clusters/SAFETY/deputy-mayor", {"person_id": "x"}),
    ("PUT", "/departments/FIRE/senior-team/hr_partner", {"person_id": "x"}),
    ("DELETE", "/departments/FIRE/senior-team/hr_partner", None),
    ("POST", "/import", {"rows": []}),
]


@pytest.mark.parametrize("method,path,body", WRITE_ROUTES)
async def test_auth_on_every_write_route(client, method, path, body):
    await _seed(client)
    kw = {"json": body} if body is not None else {}
    assert (await client.request(method, path, **kw)).status_code == 401
    assert (await client.request(method, path, headers={"X-API-Key": "wrong"}, **kw)).status_code == 401
    assert (await client.request(method, path, headers=auth("staff"), **kw)).status_code == 403
    ok = await client.request(method, path, headers=W, **kw)
    assert ok.status_code not in (401, 403), ok.text
    assert ok.status_code < 500


async def test_personal_fields_need_staff(client):
    await _seed(client)
    public = (await client.get("/people", params={"page_size": 200})).json()
    assert public["total"] > 70
    assert all(p["email"] is None and p["phone"] is None for p in public["items"])
    staff = (await client.get("/people", params={"page_size": 200}, headers=auth("staff"))).json()
    assert all(p["email"] and p["phone"] for p in staff["items"])
    # the routing answer never carries personal data either: none of the seeded emails or phones
    # (not a bare "555": the answer's uuids may contain it)
    text = (await client.get("/routing", params={"department": "FIRE", "function": "staffing"})).text
    assert "@" not in text
    assert not [v for p in staff["items"] for v in (p["email"], p["phone"]) if v in text]


async def test_pagination_and_filters(client):
    await _seed(client)
    r = (await client.get("/departments", params={"cluster": "OPERATIONS", "page_size": 2})).json()
    assert r["total"] == 4 and len(r["items"]) == 2
    r2 = (await client.get("/departments", params={"cluster": "OPERATIONS", "page_size": 2, "page": 2})).json()
    assert {d["code"] for d in r["items"]}.isdisjoint({d["code"] for d in r2["items"]})
    assert (await client.get("/departments", params={"page_size": 0})).status_code == 422


async def test_import_is_all_or_nothing_with_row_report(client):
    rows = directory_rows()[:10] + [{"department_code": "X1", "department_name": "X", "role": "oit_partner"}]
    r = await client.post("/import", json=rows, headers=W)
    assert r.status_code == 422
    report = r.json()
    assert not report["ok"] and report["errors"][0]["row"] == 11
    assert (await client.get("/departments")).json()["total"] == 0


async def test_import_csv(client):
    csv_text = (
        "department_code,department_name,cluster_code,cluster_name,role,person_name,person_title,person_email,person_phone\n"
        "STREETS,Streets Department,OPS,Operations,oit_partner,Linus Byte,OIT BP,linus@city.example.gov,+1 215-555-0101\n"
        "STREETS,Streets Department,OPS,Operations,department_head,Carla Road,Commissioner,,\n"
        "WATER,Water Department,OPS,Operations,,,,,\n"
    )
    r = await client.post("/import", content=csv_text, headers={**W, "content-type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json()["departments"] == 2 and r.json()["assignments"] == 2
    bad = csv_text.replace("linus@city.example.gov", "broken-email")
    r = await client.post("/import", content=bad.replace("STREETS", "ROADS"), headers={**W, "content-type": "text/csv"})
    assert r.status_code == 422 and r.json()["errors"][0]["row"] == 1 and "email" in r.json()["errors"][0]["field"]


async def test_idempotency_key_returns_the_same_person(client):
    h = {**W, "Idempotency-Key": "abc-123"}
    a = await client.post("/people", json={"name": "Once Only"}, headers=h)
    b = await client.post("/people", json={"name": "Once Only"}, headers=h)
    assert a.status_code == b.status_code == 201 and a.json()["id"] == b.json()["id"]
    assert (await client.get("/people", params={"q": "once only"})).json()["total"] == 1
    c = await client.post("/people", json={"name": "Someone Else"}, headers=h)
    assert c.status_code == 409


async def test_audit_trail_records_who_changed_what(client):
    await _seed(client)
    await client.patch("/departments/FIRE", json={"name": "Fire & Rescue"}, headers=W)
    assert (await client.get("/audit")).status_code == 401
    log = (await client.get("/audit", params={"entity": "department", "entity_id": "FIRE"}, headers=auth("staff"))).json()
    assert log["items"][0]["action"] == "department.updated" and log["items"][0]["actor"] == "key directory"
    assert log["items"][0]["by"] == {"kind": "key", "name": "directory", "email": None, "via": "key"}
    assert log["items"][0]["details"]["name"] == ["Fire Department", "Fire & Rescue"]


async def test_correlation_id_echoed_and_health(client):
    r = await client.get("/healthz", headers={"X-Correlation-ID": "abc"})
    assert r.status_code == 200 and r.headers["x-correlation-id"] == "abc"
    assert (await client.get("/readyz")).status_code == 200
    metrics = (await client.get("/metrics")).text
    assert 'citystat_http_requests_total{method="GET",route="/healthz",service="directory",status="200"}' in metrics


async def test_body_too_large_is_413(client):
    r = await client.post("/people", content=b"x" * (11 * 1024 * 1024), headers={**W, "content-type": "application/json"})
    assert r.status_code == 413
