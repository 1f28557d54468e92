"""Issue 17 through the API, with bearer tokens from the real local OpenID provider: every change to a
request records who made it (a person's name, email and how they came in, or a key's name), the history
reads "Closed by Nadia Santiago", and a department's 311 staff act on their own department's requests
only (the contact center and administrators on all; a key limited by its entry's departments)."""

import httpx
import pytest
from intake311_helpers import POTHOLE, create

from citystat_common.devidp import ProviderProcess
from citystat_common.testing import TEST_KEY_ENTRIES, app_client, auth
from intake311.main import create_app

pytestmark = pytest.mark.integration
NADIA = "nadia.santiago@city.example.gov"  # 311 queue coordinator, STREETS (demo directory)
JULIAN = "julian.baptiste@city.example.gov"  # 311 queue coordinator, WATER
PRIYA = "priya.lindqvist@city.example.gov"  # call-taker, 311 contact center
NOBODY = "drifter@city.example.gov"  # 311 staff in no department (registered on the provider below)
STREETS_KEY = {"name": "streets_crm", "key": "test-key-streets-crm", "scopes": ["311:write"], "departments": ["STREETS"]}
WATER_MAIN = {"service_code": "WATER_MAIN", "lat": "39.95", "long": "-75.16", "attribute[FLOW]": "steady"}


@pytest.fixture(scope="module")
def provider():
    with ProviderProcess() as p:
        httpx.put(f"{p.issuer}/users/{NOBODY}", json={
            "email": NOBODY, "name": "Dana Drifter", "groups": ["citystat-staff", "citystat-311_staff"]},
        ).raise_for_status()
        yield p


@pytest.fixture(scope="module")
def bearer(provider):
    return provider.bearer


@pytest.fixture
async def client(settings, provider):
    people = settings.model_copy(update={"identity_issuer": provider.issuer,
                                         "api_keys": [*TEST_KEY_ENTRIES, STREETS_KEY]})
    async with app_client(create_app(people)) as c:
        yield c


def notes(doc: dict) -> list[dict]:
    return [n for n in doc["notes"] if n["type"] not in ("created", "linked")]


async def test_each_change_records_the_person_and_the_history_reads_their_name(client, bearer):
    rid = await create(client)
    r = await client.post(f"/staff/requests/{rid}/acknowledge", headers=bearer(NADIA))
    assert r.status_code == 200, r.text
    r = await client.post(f"/staff/requests/{rid}/notes", json={"text": "crew booked", "public": False},
                          headers=bearer(NADIA))
    assert r.status_code == 200, r.text
    r = await client.post(f"/staff/requests/{rid}/close", json={"reason": "fixed"}, headers=bearer(NADIA))
    assert r.status_code == 200, r.text
    history = notes(r.json())
    assert [n["summary"] for n in history] == [
        "Acknowledged by Nadia Santiago", "Note by Nadia Santiago", "Closed by Nadia Santiago"]
    assert {(n["author"], n["author_kind"], n["author_email"], n["author_via"]) for n in history} == {
        ("Nadia Santiago", "person", NADIA, "bearer")}
    created = r.json()["notes"][0]
    assert created["summary"] == "Received by key call_center" and r.json()["filed_by"] == "key call_center"
    # the resident-facing feed: no member of staff by name, no email
    public = (await client.get(f"/requests/{rid}.json", params={"extensions": "true"})).json()[0]
    assert {n["author"] for n in public["notes"]} == {"call_center", "City staff"}
    assert NADIA not in str(public) and "Nadia" not in str(public)


async def test_a_machine_key_is_named_as_a_key(client):
    rid = await create(client)
    r = await client.post(f"/staff/requests/{rid}/start", headers=auth("call_center"))
    assert r.status_code == 200, r.text
    [started] = notes(r.json())
    assert started["summary"] == "Work started by key call_center"
    assert (started["author_kind"], started["author_email"], started["author_via"]) == ("key", None, "key")


async def test_transfer_and_merge_record_the_person(client, bearer):
    first, second = await create(client), await create(client, {**POTHOLE, "lat": "39.99"})
    r = await client.post(f"/staff/requests/{second}/merge", json={"into": first}, headers=bearer(NADIA))
    assert r.status_code == 200, r.text
    assert notes(r.json())[-1]["summary"] == "Merged as a duplicate by Nadia Santiago"
    r = await client.post(f"/staff/requests/{first}/transfer", json={"department_code": "WATER", "text": "a leak"},
                          headers=bearer(NADIA))
    assert r.status_code == 200, r.text
    assert notes(r.json())[-1]["summary"] == "Transferred by Nadia Santiago"


async def test_catalog_writes_record_who(client, bearer):
    r = await client.put("/admin/calendars/PARKS_SUMMER", json={"name": "Parks summer hours"}, headers=auth("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["changed_by"] == {"kind": "key", "name": "admin", "email": None, "via": "key"}
    r = await client.patch("/admin/services/POTHOLE", json={"service_notice": "Crews work nights in summer."},
                           headers=auth("admin"))
    assert r.status_code == 200 and r.json()["changed_by"]["name"] == "admin"


# --- a department's requests: its own staff, the contact center, admins ---------------------------


async def test_311_staff_act_on_their_own_department_only(client, bearer):
    streets = await create(client)  # POTHOLE: STREETS
    water = await create(client, WATER_MAIN)
    assert (await client.post(f"/staff/requests/{streets}/acknowledge", headers=bearer(NADIA))).status_code == 200
    for action, body in (("acknowledge", None), ("start", None), ("close", {"reason": "fixed"}),
                         ("notes", {"text": "x"}), ("transfer", {"department_code": "STREETS"}),
                         ("merge", {"into": streets})):
        r = await client.post(f"/staff/requests/{water}/{action}", json=body, headers=bearer(NADIA))
        assert r.status_code == 403, (action, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["detail"].startswith("this request belongs to WATER; your department is STREETS")
        assert r.json()["errors"][0]["field"] == "department_code"
    assert (await client.post(f"/staff/requests/{water}/acknowledge", headers=bearer(JULIAN))).status_code == 200
    doc = (await client.get(f"/staff/requests/{water}", headers=auth("staff"))).json()
    assert [n["summary"] for n in notes(doc)] == ["Acknowledged by Julian Baptiste"]  # the refusals wrote nothing


async def test_after_a_transfer_the_new_department_acts(client, bearer):
    rid = await create(client)
    r = await client.post(f"/staff/requests/{rid}/transfer", json={"department_code": "WATER", "text": "a leak"},
                          headers=bearer(NADIA))
    assert r.status_code == 200, r.text
    assert (await client.post(f"/staff/requests/{rid}/start", headers=bearer(NADIA))).status_code == 403
    assert (await client.post(f"/staff/requests/{rid}/start", headers=bearer(JULIAN))).status_code == 200


async def test_the_contact_center_and_admins_act_on_all(client, bearer):
    water = await create(client, WATER_MAIN)
    assert (await client.post(f"/staff/requests/{water}/acknowledge", headers=bearer(PRIYA))).status_code == 200
    assert (await client.post(f"/staff/requests/{water}/start", headers=auth("admin"))).status_code == 200
    assert (await client.post(f"/staff/requests/{water}/notes", json={"text": "called back"},
                              headers=auth("call_center"))).status_code == 200  # a key without departments


async def test_a_person_in_no_department_acts_on_none(client, bearer):
    rid = await create(client)
    r = await client.post(f"/staff/requests/{rid}/acknowledge", headers=bearer(NOBODY))
    assert r.status_code == 403 and "you are in no department" in r.json()["detail"]


async def test_a_key_with_departments_is_limited_like_a_person(client):
    streets, water = await create(client), await create(client, WATER_MAIN)
    key = {"X-API-Key": STREETS_KEY["key"]}
    assert (await client.post(f"/staff/requests/{streets}/acknowledge", headers=key)).status_code == 200
    r = await client.post(f"/staff/requests/{water}/acknowledge", headers=key)
    assert r.status_code == 403 and "key streets_crm is limited to STREETS" in r.json()["detail"]


async def test_without_311_write_it_is_still_the_scope_that_refuses(client, bearer):
    rid = await create(client)
    r = await client.post(f"/staff/requests/{rid}/acknowledge", headers=bearer("esther.raman@city.example.gov"))
    assert r.status_code == 403 and "311:write" in r.json()["detail"]
