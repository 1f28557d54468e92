"""The service catalog admin API (scope 311:admin): owning-department checks against the local copy
and the directory service, service levels, retiring services, business calendars."""

import httpx
import pytest
import sqlalchemy as sa
from intake311_helpers import assert_error_doc, post

from citystat_common.db import utcnow
from citystat_common.events import DepartmentUpserted, make_event
from citystat_common.testing import TEST_KEY_ENTRIES, app_client, auth
from directory.config import Settings as DirectorySettings
from directory.main import create_app as create_directory_app
from intake311.handlers import HANDLERS
from intake311.main import create_app
from intake311.models import Department

ADMIN = auth("admin")

NEW_SERVICE = {
    "service_code": "BEES",
    "service_name": "Bee swarm",
    "description": "A swarm of bees on public property.",
    "group": "Health",
    "keywords": "bees, swarm, insects",
    "department_code": "VECTOR",
    "service_level": {"amount": 4, "unit": "business_hours"},
    "service_notice": "A beekeeper is called within four business hours.",
    "attributes": [
        {"code": "SIZE", "datatype": "singlevaluelist", "required": True, "description": "How big is the swarm?",
         "order": 1, "values": [{"key": "ball", "name": "Football"}, {"key": "huge", "name": "Larger"}]},
        {"code": "HEIGHT", "datatype": "number", "description": "Height above ground (m)", "order": 2},
    ],
}


async def preload(app, code="VECTOR", name="Vector Control", active=True):
    """What a directory.department.upserted event stores: through the consumer's own handler."""
    payload = DepartmentUpserted(department_id=f"id-{code}", code=code, name=name, active=active)
    envelope = make_event(payload, subject=payload.department_id)
    async with app.state.ctx.uow() as uow:
        await HANDLERS[envelope.type](uow, envelope, payload)
        await uow.commit()


async def test_admin_routes_need_the_admin_scope(client):
    for method, path, body in [
        ("GET", "/admin/services", None), ("POST", "/admin/services", NEW_SERVICE),
        ("PATCH", "/admin/services/POTHOLE", {"service_name": "x"}), ("DELETE", "/admin/services/POTHOLE", None),
        ("PUT", "/admin/calendars/CITY", {"name": "x"}), ("GET", "/admin/departments", None),
    ]:
        kw = {"json": body} if body is not None else {}
        assert (await client.request(method, path, **kw)).status_code == 401
        for role in ("staff", "call_center"):
            r = await client.request(method, path, headers=auth(role), **kw)
            assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")


async def test_seeded_catalog_in_admin_view(client):
    services = (await client.get("/admin/services", headers=ADMIN)).json()
    pothole = next(s for s in services if s["service_code"] == "POTHOLE")
    assert pothole["department_code"] == "STREETS" and pothole["agency_responsible"] == "Streets Department"
    assert pothole["service_level"] == {"amount": 3.0, "unit": "business_days", "calendar": "CITY", "rules": []}
    assert pothole["service_level_text"] == "3 business days" and pothole["metadata"] is True
    depts = {d["code"] for d in (await client.get("/admin/departments", headers=ADMIN)).json()}
    assert {"STREETS", "WATER", "SANITATION", "LI", "POLICE", "PARKS", "HEALTH"} <= depts


async def test_unknown_department_is_refused_when_the_directory_is_down(client):
    r = await client.post("/admin/services", json=NEW_SERVICE, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "department_code"


async def test_create_service_with_department_from_directory_events(settings):
    app = create_app(settings)
    async with app_client(app) as client:
        await preload(app)
        r = await client.post("/admin/services", json=NEW_SERVICE, headers={**ADMIN, "Idempotency-Key": "bees-1"})
        assert r.status_code == 201, r.text
        again = await client.post("/admin/services", json=NEW_SERVICE, headers={**ADMIN, "Idempotency-Key": "bees-1"})
        assert again.status_code == 201 and again.json() == r.json()
        assert (await client.post("/admin/services", json=NEW_SERVICE, headers=ADMIN)).status_code == 409
        listed = (await client.get("/services.json")).json()
        bees = next(s for s in listed if s["service_code"] == "BEES")
        assert bees == {"service_code": "BEES", "service_name": "Bee swarm", "description": NEW_SERVICE["description"],
                        "metadata": True, "type": "realtime", "keywords": "bees, swarm, insects", "group": "Health"}
        definition = (await client.get("/services/BEES.json")).json()
        assert [a["code"] for a in definition["attributes"]] == ["SIZE", "HEIGHT"]
        r = await post(client, {"service_code": "BEES", "address_string": "Rittenhouse Sq", "attribute[SIZE]": "huge",
                                "attribute[HEIGHT]": "3.5"})
        assert r.status_code == 201, r.text
        assert "(Vector Control)" in r.json()[0]["service_notice"]
        assert_error_doc(await post(client, {"service_code": "BEES", "address_string": "x"}), 400, "json",
                         contains="attribute[SIZE] is required")

        # a renamed department (a later directory event) renames the agency responsible
        await preload(app, name="Vector Control Program")
        rid = r.json()[0]["service_request_id"]
        assert (await client.get(f"/requests/{rid}.json")).json()[0]["agency_responsible"] == "Vector Control Program"

        # an inactive department cannot own a service
        await preload(app, code="OLDDEPT", name="Old", active=False)
        bad = await client.post("/admin/services", json={**NEW_SERVICE, "service_code": "X2", "department_code": "OLDDEPT"},
                                headers=ADMIN)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "department_code"


async def test_create_service_asks_the_directory(settings, db_factory):
    directory_settings = DirectorySettings(database_url=db_factory("directory"), api_keys=TEST_KEY_ENTRIES,
                                           kafka_bootstrap=settings.kafka_bootstrap)
    async with app_client(create_directory_app(directory_settings)) as directory:
        r = await directory.post("/departments", json={"code": "VECTOR", "name": "Vector Control"}, headers=auth("directory"))
        assert r.status_code == 201, r.text
        async with app_client(create_app(settings, directory_client=directory)) as client:
            r = await client.post("/admin/services", json=NEW_SERVICE, headers=ADMIN)
            assert r.status_code == 201, r.text
            assert r.json()["agency_responsible"] == "Vector Control"
            depts = {d["code"]: d for d in (await client.get("/admin/departments", headers=ADMIN)).json()}
            assert depts["VECTOR"]["name"] == "Vector Control"  # kept in the local copy
            r = await client.post("/admin/services", json={**NEW_SERVICE, "service_code": "X3", "department_code": "NOPE"},
                                  headers=ADMIN)
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "department_code"


async def test_department_stored_by_the_consumer_meanwhile_is_kept(settings):
    """The directory's own event can land (through the consumer) between the local lookup that
    missed and the on-demand copy: the service is still created, on the row stored first."""
    if settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite transactions take the write lock at BEGIN: no other commit can come in between")
    app_ref = {}

    async def directory(request: httpx.Request) -> httpx.Response:
        async with app_ref["app"].state.ctx.engine.begin() as conn:  # the consumer's commit
            await conn.execute(sa.insert(Department.__table__).values(code="VECTOR", name="Vector Control Program",
                                                                       active=True, updated_at=utcnow()))
        return httpx.Response(200, json={"code": "VECTOR", "name": "Vector Control", "active": True})

    client_to_directory = httpx.AsyncClient(transport=httpx.MockTransport(directory), base_url="http://directory")
    app_ref["app"] = app = create_app(settings, directory_client=client_to_directory)
    async with app_client(app) as client:
        r = await client.post("/admin/services", json=NEW_SERVICE, headers=ADMIN)
        assert r.status_code == 201, r.text
        assert r.json()["agency_responsible"] == "Vector Control Program"
    await client_to_directory.aclose()


@pytest.mark.parametrize(
    "change,field",
    [
        ({"service_code": "has,comma"}, "service_code"),
        ({"service_level": {"amount": 0, "unit": "business_days"}}, "service_level.amount"),
        ({"service_level": {"amount": 1, "unit": "fortnights"}}, "service_level.unit"),
        ({"attributes": [{"code": "A", "datatype": "singlevaluelist", "description": "no values"}]}, "attributes.0"),
        ({"attributes": [{"code": "A", "description": "d"}, {"code": "A", "description": "d"}]}, "attributes"),
        ({"type": "sometimes"}, "type"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
async def test_service_validation(client, change, field):
    r = await client.post("/admin/services", json={**NEW_SERVICE, "department_code": "STREETS", **change}, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert any(e["field"] == field for e in r.json()["errors"]), r.json()


async def test_update_and_retire_a_service(client):
    r = await client.patch("/admin/services/NOISE", headers=ADMIN,
                           json={"service_level": {"amount": 48, "unit": "calendar_hours"}, "department_code": "POLICE"})
    assert r.status_code == 200, r.text
    assert r.json()["service_level_text"] == "48 hours" and r.json()["agency_responsible"] == "Police Department"
    r = await post(client, {"service_code": "NOISE", "address_string": "1 Loud St", "attribute[SOURCE]": "music"})
    assert "(Police Department)" in r.json()[0]["service_notice"]
    assert (await client.delete("/admin/services/NOISE", headers=ADMIN)).status_code == 204
    assert "NOISE" not in {s["service_code"] for s in (await client.get("/services.json")).json()}
    assert_error_doc(await client.get("/services/NOISE.xml"), 404, "xml")
    assert_error_doc(await post(client, {"service_code": "NOISE", "address_string": "x"}), 404, "json")
    # its requests stay readable
    rid = r.json()[0]["service_request_id"]
    assert (await client.get(f"/requests/{rid}.json")).json()[0]["service_name"] == "Noise complaint"
    assert (await client.patch("/admin/services/NOPE", json={}, headers=ADMIN)).status_code == 404


async def test_business_calendar(client):
    bad = await client.put("/admin/calendars/CITY", headers=ADMIN, json={"name": "x", "opens": "18:00", "closes": "09:00"})
    assert bad.status_code == 422
    bad = await client.put("/admin/calendars/CITY", headers=ADMIN, json={"name": "x", "workdays": [7]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "workdays"
    r = await client.put("/admin/calendars/WEEKEND_CREW", headers=ADMIN,
                         json={"name": "Seven days", "opens": "07:00", "closes": "19:00", "workdays": [0, 1, 2, 3, 4, 5, 6],
                               "holidays": ["2026-12-25"], "federal_holidays": False})
    assert r.status_code == 200, r.text
    r = await client.patch("/admin/services/TREE_DOWN", headers=ADMIN,
                           json={"service_level": {"amount": 2, "unit": "business_days", "calendar": "WEEKEND_CREW"}})
    assert r.status_code == 200 and r.json()["service_level"]["calendar"] == "WEEKEND_CREW"
    bad = await client.patch("/admin/services/TREE_DOWN", headers=ADMIN,
                             json={"service_level": {"amount": 2, "unit": "business_days", "calendar": "NOPE"}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "service_level.calendar"
    calendars = {c["code"]: c for c in (await client.get("/admin/calendars", headers=ADMIN)).json()}
    assert calendars["WEEKEND_CREW"]["workdays"] == [0, 1, 2, 3, 4, 5, 6]
    assert calendars["CITY"]["holidays"] == ["2026-11-27"]
