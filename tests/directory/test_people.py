"""People in the loop (issue 17): the directory's events say how to reach a person (email, and how
they want to be told), a person has a department they work in and a notification preference, a
signed-in person finds and sets their own entry (GET /me, PUT /me/notify), every change records
who made it by name, and directory writes by people need directory:write. Tokens come from the real
local identity provider; events go through the real broker. SQLite and PostgreSQL."""

import asyncio

import pytest

from citystat_common.demo import directory_rows
from citystat_common.demo.loader import demo_staff
from citystat_common.devidp import ProviderProcess, sign_in_as
from citystat_common.testing import TEST_KEY_ENTRIES, app_client, auth, collect_events
from directory.main import create_app
from directory.worker import build_worker

W = auth("directory")


def _row(department: str, role: str) -> dict:
    return next(r for r in directory_rows() if r["department_code"] == department and r["role"] == role)


def _staff(title_part: str) -> dict:
    return next(p for p in demo_staff() if title_part in p["title"] or title_part in p["groups"])


async def _seed(client, *, staff=True):
    r = await client.post("/import", json={"rows": directory_rows()}, headers=W)
    assert r.status_code == 200, r.text
    if staff:
        for p in demo_staff():
            body = {"name": p["name"], "title": p["title"], "email": p["email"], "phone": p["phone"],
                    "department": p["department_code"], "notify": p["notify"]}
            r = await client.post("/people", json=body, headers=W)
            assert r.status_code == 201, r.text


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def provider():
    with ProviderProcess() as p:
        yield p


@pytest.fixture
async def people_client(directory_settings, provider):
    """The directory accepting bearer tokens from the real provider (audience: the citystat client)."""
    settings = directory_settings.model_copy(update={"identity_issuer": provider.issuer})
    async with app_client(create_app(settings)) as c:
        yield c


def _token(provider, email: str) -> str:
    return sign_in_as(provider.issuer, email, client_id="citystat")["id_token"]


async def test_team_and_person_events_carry_email_and_notify(client, outbox):
    await _seed(client, staff=False)
    events = await outbox()
    streets = [d for t, d in events if t == "directory.senior_team.changed" and d["department_code"] == "STREETS"][-1]
    for role, ref in streets["roles"].items():
        assert ref["email"] == _row("STREETS", role)["person_email"], role
    assert streets["deputy_mayor"]["email"] == _row("STREETS", "deputy_mayor")["person_email"]
    assert streets["managing_director"]["email"] == _row("STREETS", "managing_director")["person_email"]
    upserts = {d["name"]: d for t, d in events if t == "directory.person.upserted"}
    head = _row("STREETS", "department_head")
    assert upserts[head["person_name"]]["email"] == head["person_email"]
    assert upserts[head["person_name"]]["notify"] == "immediate"

    # a changed email reaches the teams the person is on, not only their own event
    pid = streets["roles"]["department_head"]["person_id"]
    r = await client.patch(f"/people/{pid}", json={"email": "d.valdez@city.example.gov", "notify": "digest"}, headers=W)
    assert r.status_code == 200 and r.json()["notify"] == "digest", r.text
    after = (await outbox())[len(events):]
    assert [d["notify"] for t, d in after if t == "directory.person.upserted"] == ["digest"]
    team = [d for t, d in after if t == "directory.senior_team.changed" and d["department_code"] == "STREETS"][-1]
    assert team["roles"]["department_head"]["email"] == "d.valdez@city.example.gov"


async def test_a_person_has_a_work_department_and_a_notify_preference(client):
    await _seed(client, staff=False)
    r = await client.post("/people", json={"name": "Nia Queue", "email": "Nia.Queue@city.example.gov",
                                           "department": "STREETS"}, headers=W)
    assert r.status_code == 201, r.text
    nia = r.json()
    assert nia["department"] == "STREETS" and nia["notify"] == "immediate"
    r = await client.patch(f"/people/{nia['id']}", json={"notify": "digest", "department": "WATER"}, headers=W)
    assert r.status_code == 200 and (r.json()["notify"], r.json()["department"]) == ("digest", "WATER")
    # shown in reads, and cleared with null
    assert (await client.get(f"/people/{nia['id']}")).json()["notify"] == "digest"
    r = await client.patch(f"/people/{nia['id']}", json={"department": None}, headers=W)
    assert r.json()["department"] is None
    # unknown department, unknown preference, a null preference: 422 naming the field
    for body, field in [({"department": "NOWHERE"}, "department"), ({"notify": "weekly"}, "notify"),
                        ({"notify": None}, "notify")]:
        r = await client.patch(f"/people/{nia['id']}", json=body, headers=W)
        assert r.status_code == 422 and field in [e["field"] for e in r.json()["errors"]], r.text
    # found by email in any case, by staff only (an email is personal data)
    found = await client.get("/people", params={"email": "nia.queue@CITY.example.gov"}, headers=auth("staff"))
    assert found.json()["total"] == 1 and found.json()["items"][0]["id"] == nia["id"]
    assert (await client.get("/people", params={"email": "nobody@city.example.gov"}, headers=auth("staff"))).json()["total"] == 0
    refused = await client.get("/people", params={"email": "nia.queue@city.example.gov"})
    assert refused.status_code == 403 and "personal data" in refused.json()["detail"]


@pytest.mark.integration
async def test_me_and_my_notify_with_a_real_provider_token(people_client, provider):
    client = people_client
    await _seed(client)
    partner = _row("STREETS", "stat_partner")
    token = _token(provider, partner["person_email"])
    me = await client.get("/me", headers=_bearer(token))
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["name"] == partner["person_name"] and body["email"] == partner["person_email"]
    assert body["notify"] == "immediate" and {"role": "stat_partner", "department": "STREETS"}.items() <= body["holds"][0].items()

    # their own preference needs no directory:write ...
    r = await client.put("/me/notify", json={"notify": "digest"}, headers=_bearer(token))
    assert r.status_code == 200 and r.json()["notify"] == "digest", r.text
    assert (await client.get(f"/people/{body['id']}")).json()["notify"] == "digest"
    # ... but changing their entry otherwise does, and the refusal says why
    denied = await client.patch(f"/people/{body['id']}", json={"notify": "immediate"}, headers=_bearer(token))
    assert denied.status_code == 403 and "'directory:write'" in denied.json()["detail"], denied.text
    log = (await client.get("/audit", params={"entity_id": body["id"]}, headers=_bearer(token))).json()["items"]
    assert log[0]["action"] == "person.notify_set" and log[0]["actor"] == partner["person_name"]
    assert log[0]["by"] == {"kind": "person", "name": partner["person_name"], "email": partner["person_email"],
                            "via": "bearer"}

    # a key is nobody; nobody signed in is asked to; a bad preference is a 422
    assert (await client.get("/me", headers=W)).status_code == 403
    assert (await client.get("/me")).status_code == 401
    r = await client.put("/me/notify", json={"notify": "hourly"}, headers=_bearer(token))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "notify"


@pytest.mark.integration
async def test_me_is_a_clear_404_for_someone_the_directory_does_not_know(people_client, provider):
    await _seed(people_client, staff=False)  # the provider knows the call-takers; the directory not yet
    taker = _staff("311 Call-Taker")
    token = _token(provider, taker["email"])
    for r in (await people_client.get("/me", headers=_bearer(token)),
              await people_client.put("/me/notify", json={"notify": "digest"}, headers=_bearer(token))):
        assert r.status_code == 404, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert taker["email"] in r.json()["detail"] and r.json()["errors"][0]["field"] == "email"


@pytest.mark.integration
async def test_directory_writes_by_people_need_directory_write_and_record_their_name(people_client, provider):
    client = people_client
    await _seed(client)
    analyst = _staff("citystat-performance_office")
    office = _bearer(_token(provider, analyst["email"]))
    r = await client.post("/people", json={"name": "Ray New", "email": "ray.new@city.example.gov"}, headers=office)
    assert r.status_code == 201, r.text
    ray = r.json()
    r = await client.put("/departments/WATER/senior-team/hr_partner", json={"person_id": ray["id"]}, headers=office)
    assert r.status_code == 200, r.text
    assert r.json()["created_by"] == analyst["name"]
    assert r.json()["created_by_actor"] == {"kind": "person", "name": analyst["name"], "email": analyst["email"],
                                            "via": "bearer"}
    history = (await client.get("/assignments", params={"person_id": ray["id"]})).json()["items"][0]
    assert history["created_by"] == analyst["name"] and history["created_by_actor"]["email"] is None  # public read
    log = (await client.get("/audit", params={"actor_email": analyst["email"].upper()}, headers=office)).json()
    assert {e["action"] for e in log["items"]} == {"person.created", "role.assigned"}
    assert all(e["actor"] == analyst["name"] for e in log["items"])

    # a key's changes are labelled as the key's
    r = await client.put("/departments/WATER/senior-team/hr_partner", json={"person_id": ray["id"]}, headers=W)
    other = await client.post("/people", json={"name": "Key Made"}, headers=W)
    entry = (await client.get("/audit", params={"entity_id": other.json()["id"]}, headers=office)).json()["items"][0]
    assert entry["actor"] == "key directory" and entry["by"]["kind"] == "key"

    # 311 staff and a stat partner work in the system but do not change the directory
    for email in (_staff("311 Queue Coordinator, Streets")["email"], _row("STREETS", "stat_partner")["person_email"]):
        denied = await client.post("/people", json={"name": "Not Allowed"}, headers=_bearer(_token(provider, email)))
        assert denied.status_code == 403, denied.text
        assert denied.json()["detail"] == "you lack the 'directory:write' scope"


async def test_demo_staff_work_in_departments_and_the_loader_is_idempotent(directory_settings, monkeypatch):
    """The loader's staff step through the directory API: a second run adds nobody."""
    from citystat_common.demo import loader

    staff = demo_staff()
    assert {p["department_code"] for p in staff} >= {"CONTACT311", "STREETS", "WATER"}
    assert sum("citystat-311_staff" in p["groups"] for p in staff if p["department_code"] == "CONTACT311") >= 2
    assert any({"citystat-analyst", "citystat-performance_office"} <= set(p["groups"]) for p in staff)
    async with app_client(create_app(directory_settings)) as c:
        monkeypatch.setattr(loader, "base", lambda service: str(c.base_url).rstrip("/"))
        keys = {"admin": next(e["key"] for e in TEST_KEY_ENTRIES if e["name"] == "admin")}
        first = await loader.load_directory(c, keys)
        assert first.endswith(f"{len(staff)} staff added"), first
        assert await loader.load_directory(c, keys) == "directory already has 12 departments"
        people = (await c.get("/people", params={"page_size": 200}, headers=auth("staff"))).json()
        by_email = {p["email"]: p for p in people["items"]}
        for p in staff:
            assert by_email[p["email"]]["department"] == p["department_code"]
            assert by_email[p["email"]]["notify"] == p["notify"]


@pytest.mark.integration
async def test_person_event_with_email_and_notify_reaches_the_broker(client, directory_settings, broker):
    await _seed(client, staff=False)
    r = await client.post("/people", json={"name": "Bus Rider", "email": "bus.rider@city.example.gov",
                                           "notify": "digest"}, headers=W)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    parts = build_worker(directory_settings)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c(stop)) for c in parts.components()]

    def arrived(events):
        return any(e.type == "directory.person.upserted" and e.data["person_id"] == pid for e in events)

    try:
        events = await collect_events(broker.bootstrap, "directory.changes", until=arrived, timeout=60)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await parts.engine.dispose()
    mine = next(e for e in events if e.type == "directory.person.upserted" and e.data["person_id"] == pid)
    assert (mine.data["email"], mine.data["notify"]) == ("bus.rider@city.example.gov", "digest")


async def test_old_rows_keep_what_they_had(db_kind, tmp_path, directory_settings):
    """Rows from before migration 0004: the key's bare name stays their actor, with no detail;
    every person is told at once (immediate) and works in no department until someone says so."""
    import sqlalchemy as sa

    from citystat_common.db import create_engine
    from citystat_common.migrate import upgrade
    from citystat_common.testing import empty_database

    url = empty_database(db_kind, tmp_path)
    upgrade("directory", url, "0003")
    engine = create_engine(url)
    at = "'2026-01-05 09:00:00+00:00'"
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"INSERT INTO departments (id, code, name, active, created_at, updated_at) "
                                       f"VALUES ('d1', 'STREETS', 'Streets', true, {at}, {at})"))
            await conn.execute(sa.text(f"INSERT INTO people (id, name, active, created_at, updated_at) "
                                       f"VALUES ('p1', 'Old Timer', true, {at}, {at})"))
            await conn.execute(sa.text(
                f"INSERT INTO role_assignments (role, department_id, person_id, starts_at, created_by, created_at, "
                f"pending_effect) VALUES ('hr_partner', 'd1', 'p1', {at}, 'ops', {at}, false)"))
            await conn.execute(sa.text(f"INSERT INTO audit_log (at, actor, action, entity, entity_id, details) "
                                       f"VALUES ({at}, 'ops', 'person.created', 'person', 'p1', '{{}}')"))
    finally:
        await engine.dispose()
    upgrade("directory", url)
    async with app_client(create_app(directory_settings.model_copy(update={"database_url": url}))) as c:
        person = (await c.get("/people/p1")).json()
        assert (person["notify"], person["department"]) == ("immediate", None)
        history = (await c.get("/assignments")).json()["items"][0]
        assert (history["created_by"], history["created_by_actor"]) == ("ops", None)
        entry = (await c.get("/audit", headers=auth("staff"))).json()["items"][0]
        assert (entry["actor"], entry["by"]) == ("ops", None)


async def test_import_again_keeps_a_persons_own_preference(client, outbox):
    await _seed(client, staff=False)
    head = _row("WATER", "department_head")
    pid = (await client.get("/people", params={"email": head["person_email"]}, headers=auth("staff"))).json()["items"][0]["id"]
    assert (await client.patch(f"/people/{pid}", json={"notify": "digest"}, headers=W)).status_code == 200
    events = await outbox()
    again = await client.post("/import", json={"rows": directory_rows()}, headers=W)
    assert again.status_code == 200 and again.json()["applied"] == 0, again.text
    assert await outbox() == events
    assert (await client.get(f"/people/{pid}")).json()["notify"] == "digest"
