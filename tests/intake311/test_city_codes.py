"""A city's own service and department codes in intake311 (issue 20), and the legacy number as an
Open311 search parameter."""

from intake311_helpers import intake_deps, post

from citystat_common.codes import quote_code
from citystat_common.testing import auth
from intake311.models import Department

ADMIN = auth("admin")


def service(code: str, dept: str) -> dict:
    return {"service_code": code, "service_name": code, "description": f"{code} reported by residents.",
            "group": "City", "keywords": "", "department_code": dept,
            "service_level": {"amount": 5, "unit": "calendar_days"}, "attributes": []}


async def test_service_and_department_codes_as_the_city_has_them(client, uow_factory):
    async with uow_factory() as uow:
        uow.session.add_all([Department(code="NYC H+H", name="Health + Hospitals"), Department(code="dohmh", name="Health")])
        await uow.commit()
    for code, dept in (("Abandoned Bike", "dohmh"), ("Noise - Street/Sidewalk", "NYC H+H")):
        r = await client.post("/admin/services", json=service(code, dept), headers=ADMIN)
        assert r.status_code == 201, r.text
        assert (r.json()["service_code"], r.json()["department_code"]) == (code, dept)
        one = await client.get(f"/admin/services/{quote_code(code)}", headers=ADMIN)
        assert one.status_code == 200 and one.json()["service_code"] == code
        definition = await client.get(f"/services/{quote_code(code)}.json")
        assert definition.status_code == 200 and definition.json()["service_code"] == code
    # exactly: the upper-cased spelling is no service of the city's
    assert (await client.get(f"/admin/services/{quote_code('ABANDONED BIKE')}", headers=ADMIN)).status_code == 404
    r = await post(client, {"service_code": "Abandoned Bike", "lat": "40.7", "long": "-74.0"})
    assert r.status_code == 201, r.text
    found = (await client.get("/requests.json", params={"service_code": "Abandoned Bike", "extensions": "true"})).json()
    assert len(found) == 1 and found[0]["extended_attributes"]["department_code"] == "dohmh"
    assert found[0]["agency_responsible"] == "Health"
    for bad in ("A,B", " lead", "x" * 41):
        r = await client.post("/admin/services", json=service(bad, "dohmh"), headers=ADMIN)
        assert r.status_code == 422, r.text
    r = await client.post("/admin/services", json=service("Bikes", "A/B"), headers=ADMIN)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "department_code"


async def test_an_imported_request_is_found_by_its_legacy_number(client, uow_factory, tmp_path):
    from nyc_export import nyc_row, write_nyc_csv
    from test_history_import import ACTOR, city_catalog, nyc_mapping

    from intake311.history_import import run_import

    await city_catalog(uow_factory)
    path = write_nyc_csv(tmp_path / "nyc.csv", [
        nyc_row(58761234, created="2024-04-16T03:03:15.000", closed="2024-04-16T05:10:00.000", resolution="Done."),
        nyc_row(58761235, created="2024-04-17T03:03:15.000", status="Open"),
    ])
    with path.open("rb") as f:
        await run_import(uow_factory, intake_deps(), source=f, file_name="nyc.csv", mapping=nyc_mapping(), actor=ACTOR)
    found = (await client.get("/requests.json", params={"legacy_id": "58761234", "extensions": "true"})).json()
    assert len(found) == 1
    assert found[0]["extended_attributes"]["legacy_id"] == "58761234" and found[0]["status"] == "closed"
    assert found[0]["requested_datetime"].startswith("2024-04-16")
    # the legacy number overrides the other parameters (as service_request_id does), and is matched whole
    assert len((await client.get("/requests.json", params={"legacy_id": "58761235", "status": "closed"})).json()) == 1
    assert (await client.get("/requests.json", params={"legacy_id": "5876123"})).json() == []
    xml = await client.get("/requests.xml", params={"legacy_id": "58761234"})
    assert xml.status_code == 200 and "<service_request_id>" in xml.text
