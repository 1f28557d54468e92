"""An empty city and its catalog import (issue 20): a freshly migrated database has no catalog,
migration 0021 keeps a seeded catalog a city took into use, the demo loader gives the catalog 0002
and 0007 used to seed, and POST /admin/catalog/import and ``import-catalog`` bring a city's own:
all or nothing, every problem at once, the same file again changes nothing, a name on each change."""

import argparse
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from intake311_helpers import query_rows

from citystat_common.db import create_engine, session_factory
from citystat_common.events import DepartmentUpserted, make_event
from citystat_common.migrate import upgrade
from citystat_common.testing import TEST_KEY_ENTRIES, app_client, auth, empty_database
from intake311 import catalog_command
from intake311.config import Settings
from intake311.demo_catalog import DEPARTMENTS, load_demo_catalog
from intake311.handlers import HANDLERS
from intake311.main import create_app
from intake311.models import Service

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "catalog.csv"
NOWHERE = "127.0.0.1:9"
CSV = {"Content-Type": "text/csv", **auth("admin")}
# the columns a service is stored with, as the catalog defines it (not when or by whom)
DEFINITION = ("service_code", "service_name", "description", "group_name", "keywords", "type", "department_code",
              "sla_amount", "sla_unit", "sla_rules", "department_rules", "duplicate_policy", "calendar_code",
              "service_notice", "attributes", "active")
LISTS = ("sla_rules", "department_rules")


def _settings(url: str) -> Settings:
    return Settings(database_url=url, api_keys=TEST_KEY_ENTRIES, kafka_bootstrap=NOWHERE,
                    directory_url=f"http://{NOWHERE}", directory_timeout=1.0)


async def _catalog(url: str) -> dict[str, dict]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            services = (await session.execute(sa.select(Service))).unique().scalars().all()
            # a list column never written reads None; the import writes []
            return {s.service_code: {k: ([] if getattr(s, k) is None and k in LISTS else getattr(s, k)) for k in DEFINITION}
                    for s in services}
    finally:
        await engine.dispose()


async def _departments(app, codes=("POLICE", "SANITATION", "DHS", "STREETS", "CONTACT311")) -> None:
    """What the directory's events leave in the local copy, through the consumer's own handler."""
    async with app.state.ctx.uow() as uow:
        for code in codes:
            payload = DepartmentUpserted(department_id=f"id-{code}", code=code, name=f"{code} department", active=True)
            envelope = make_event(payload, subject=payload.department_id)
            await HANDLERS[envelope.type](uow, envelope, payload)
        await uow.commit()


async def test_a_freshly_migrated_database_has_no_catalog(db_factory):
    url = db_factory("intake311")
    assert await query_rows(url, "SELECT service_code FROM services") == []
    assert await query_rows(url, "SELECT code FROM departments") == []
    assert await query_rows(url, "SELECT code FROM calendars") == [("CITY",)]  # the city's hours, not a catalog
    async with app_client(create_app(_settings(url))) as client:
        assert (await client.get("/services.json")).json() == []


async def test_the_demo_catalog_is_the_one_migrations_used_to_seed(db_kind, tmp_path):
    before = empty_database(db_kind, tmp_path)
    upgrade("intake311", before, "0020")  # 0002's seed with 0007's promises, before 0021 removes it
    now = empty_database(db_kind, tmp_path)
    upgrade("intake311", now)
    report = await load_demo_catalog(now)
    assert (report.created, report.updated) == (19, 0)
    assert await _catalog(now) == await _catalog(before)
    assert sorted(r[0] for r in await query_rows(now, "SELECT code FROM departments")) == sorted(DEPARTMENTS)
    again = await load_demo_catalog(now)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 19)


async def test_0021_keeps_a_seeded_catalog_the_city_took_into_use(db_kind, tmp_path):
    used = empty_database(db_kind, tmp_path)
    upgrade("intake311", used, "0020")
    engine = create_engine(used)
    async with engine.begin() as conn:  # one edit by the admin API: the catalog is the city's now
        await conn.execute(sa.text("UPDATE services SET changed_by = :who WHERE service_code = 'HYDRANT'"),
                           {"who": '{"kind": "key", "name": "admin"}'})
    await engine.dispose()
    upgrade("intake311", used)
    assert len(await query_rows(used, "SELECT service_code FROM services")) == 19
    assert len(await query_rows(used, "SELECT code FROM departments")) == 8
    reported = empty_database(db_kind, tmp_path)
    upgrade("intake311", reported, "0020")
    engine = create_engine(reported)
    async with engine.begin() as conn:  # one request on one seeded service
        await conn.execute(sa.text(
            "INSERT INTO service_requests (pending, service_code, department_code, channel, status, detailed_status, "
            "first_contact_resolution, attributes, requested_datetime, updated_datetime, created_by) "
            "VALUES (:f, 'HYDRANT', 'WATER', 'web', 'open', 'open', :f, '{}', :t, :t, 'test')"),
            {"f": False, "t": datetime.now(UTC)})
    await engine.dispose()
    upgrade("intake311", reported)
    assert len(await query_rows(reported, "SELECT service_code FROM services")) == 19
    untouched = empty_database(db_kind, tmp_path)
    upgrade("intake311", untouched, "0020")
    upgrade("intake311", untouched)
    assert await query_rows(untouched, "SELECT service_code FROM services") == []


async def test_import_the_example_catalog_then_again_changes_nothing(db_factory):
    url = db_factory("intake311")
    app = create_app(_settings(url))
    async with app_client(app) as client:
        await _departments(app)
        raw = EXAMPLE.read_bytes()
        dry = await client.post("/admin/catalog/import", params={"dry_run": "true"}, content=raw, headers=CSV)
        assert dry.status_code == 200 and dry.json()["created"] == 5, dry.text
        assert (await client.get("/services.json")).json() == []  # a dry run stores nothing
        r = await client.post("/admin/catalog/import", content=raw, headers=CSV)
        assert r.status_code == 200, r.text
        assert (r.json()["ok"], r.json()["created"], r.json()["rows"]) == (True, 5, 6)
        codes = {s["service_code"] for s in (await client.get("/services.json")).json()}
        assert codes == {"Noise - Street/Sidewalk", "Abandoned Bike", "Encampment", "Graffiti", "Information"}
        noise = (await client.get("/admin/services/Noise - Street/Sidewalk", headers=auth("admin"))).json()
        assert noise["changed_by"]["name"] == "admin" and noise["agency_responsible"] == "POLICE department"
        encampment = (await client.get("/admin/services/Encampment", headers=auth("admin"))).json()
        assert encampment["department_rules"][0]["department_code"] == "POLICE"
        stamps = await query_rows(url, "SELECT service_code, updated_at FROM services ORDER BY service_code")
        again = await client.post("/admin/catalog/import", content=raw, headers=CSV)
        assert (again.json()["created"], again.json()["updated"], again.json()["unchanged"]) == (0, 0, 5)
        assert await query_rows(url, "SELECT service_code, updated_at FROM services ORDER BY service_code") == stamps
        changed = raw.replace(b"Abandoned bike,", b"Bicycle left behind,")
        third = await client.post("/admin/catalog/import", content=changed, headers=CSV)
        assert third.json()["updated"] == 1
        assert [c for c in third.json()["changes"] if c["change"] == "updated"] == [
            {"service_code": "Abandoned Bike", "change": "updated", "fields": ["service_name"]}]


async def test_problems_in_the_file_and_the_database_are_reported_at_once_and_nothing_is_stored(db_factory):
    app = create_app(_settings(db_factory("intake311")))
    rows = [
        {"service_code": "Bees", "service_name": "Bees", "department_code": "VECTOR",  # unknown department
         "service_level_amount": 4, "service_level_unit": "business_hours"},
        {"service_code": "Rats", "service_name": "Rats", "department_code": "POLICE", "calendar": "NIGHTS",
         "service_level_amount": 4, "service_level_unit": "business_hours"},  # unknown calendar
        {"service_code": "Bulk", "service_name": "Bulk pickup", "department_code": "SANITATION",
         "service_level_amount": 10_000, "service_level_unit": "business_days"},  # beyond what the calendar can promise
        {"service_code": "Tags", "service_name": "Tags", "department_code": "POLICE",
         "service_level_amount": 1, "service_level_unit": "weeks"},  # not a unit
        {"service_code": "Fine", "service_name": "A good one", "department_code": "POLICE",
         "service_level_amount": 1, "service_level_unit": "business_days"},
    ]
    async with app_client(app) as client:
        await _departments(app)
        r = await client.post("/admin/catalog/import", json={"rows": rows}, headers=auth("admin"))
        assert r.status_code == 422, r.text
        report = r.json()
        assert report["ok"] is False
        assert {(e["row"], e["field"]) for e in report["errors"]} == {
            (1, "department_code"), (2, "calendar"), (3, "service_level_amount"), (4, "service_level_unit")}, report
        assert (await client.get("/services.json")).json() == []


async def test_the_import_needs_the_admin_scope(db_factory):
    async with app_client(create_app(_settings(db_factory("intake311")))) as client:
        assert (await client.post("/admin/catalog/import", content=b"service_code\n", headers={"Content-Type": "text/csv"})).status_code == 401
        for role in ("staff", "call_center"):
            r = await client.post("/admin/catalog/import", content=b"service_code\n", headers={"Content-Type": "text/csv", **auth(role)})
            assert r.status_code == 403


async def test_import_catalog_command(db_factory, capsys):
    url = db_factory("intake311")
    app = create_app(_settings(url))
    async with app_client(app) as client:
        await _departments(app)
        settings = _settings(url)
        args = argparse.Namespace(path=EXAMPLE, dry_run=False, by="dana")

        def run() -> int:  # the command runs its own event loop, as from a terminal
            import threading
            codes: list[int] = []
            t = threading.Thread(target=lambda: codes.append(catalog_command.run(settings, args)))
            t.start()
            t.join()
            return codes[0]

        assert run() == 0
        assert capsys.readouterr().out.splitlines()[-1] == "5 services in 6 rows: 5 were created, 0 were changed, 0 unchanged"
        graffiti = (await client.get("/admin/services/Graffiti", headers=auth("admin"))).json()
        assert graffiti["changed_by"]["name"] == "import-catalog (dana)"
        assert run() == 0
        assert capsys.readouterr().out.splitlines()[-1].endswith("0 were created, 0 were changed, 5 unchanged")
        args.path = EXAMPLE.parent / "missing.csv"
        assert run() == 2


async def test_make_run_s_demo_loader_gives_the_old_catalog_through_the_api(db_kind, tmp_path):
    """intake311.demo.load_demo as ``make run`` calls it (the directory's departments already here):
    the catalog 0002 and 0007 seeded, then the demo requests; run again, it changes nothing."""
    from citystat_common.testing import TEST_KEYS
    from intake311 import demo

    old = empty_database(db_kind, tmp_path)
    upgrade("intake311", old, "0020")
    url = empty_database(db_kind, tmp_path)
    upgrade("intake311", url)
    app = create_app(_settings(url))
    async with app_client(app) as client:
        await _departments(app, tuple(DEPARTMENTS))
        first = await demo.load_demo(client, dict(TEST_KEYS))
        assert first.startswith("catalog: 19 services created, 0 there already; wards: 6 loaded; posted 9 requests"), first
        again = await demo.load_demo(client, dict(TEST_KEYS))
        assert again == ("catalog: 0 services created, 19 there already; wards: loaded already; "
                         "intake311 already has 9 requests"), again
        # the demo's requests near City Hall are in Center City (ward 5), and say so under extensions
        found = (await client.get("/open311/v2/requests.json", params={"area": "ward:5", "extensions": "true"})).json()
        assert found and all(r["extended_attributes"]["areas"]["ward"] == "5" for r in found), found
    want = await _catalog(old)
    got = await _catalog(url)
    assert got == want


async def test_a_rule_by_area_is_checked_against_the_boundary_layers(db_factory):
    app = create_app(_settings(db_factory("intake311")))
    row = {"service_code": "Tree", "service_name": "Street tree", "department_code": "STREETS",
           "service_level_amount": 5, "service_level_unit": "business_days",
           "department_rules": "area:ward=W3 -> SANITATION"}
    async with app_client(app) as client:
        await _departments(app)
        r = await client.post("/admin/catalog/import", json={"rows": [row]}, headers=auth("admin"))
        assert r.status_code == 422, r.text  # no layer "ward" loaded: the rule could never apply
        assert [e["field"] for e in r.json()["errors"]] == ["department_rules"], r.json()
        assert (await client.get("/services.json")).json() == []
