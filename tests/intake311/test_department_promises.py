"""Issue 16, 311 behaviour that surprised a resident or a department: duplicate linking is a
policy per service (off for questions; reports without a position matched on their normalised
address, never by location), a service level can depend on an attribute (offensive graffiti
within one business day, as its notice promises), a transfer renames the department in the
notice, and a write that names something missing is a clear 4xx."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from intake311_helpers import POTHOLE, create, intake_deps, post

from citystat_common.testing import auth
from intake311 import service
from intake311.open311 import NewRequest

W, ADMIN, STAFF = auth("call_center"), auth("admin"), auth("staff")
NY = ZoneInfo("America/New_York")
QUESTION = {"service_code": "INFORMATION", "address_string": "City Hall", "lat": "39.9526", "long": "-75.1636"}


async def duplicate_of(client, rid):
    return (await client.get(f"/staff/requests/{rid}", headers=STAFF)).json()["duplicate_of"]


async def test_questions_are_never_linked_and_closing_one_closes_only_it(client):
    first, second, third = [await create(client, QUESTION, role=role) for role in ("call_center", "web", "mobile_app")]
    assert [await duplicate_of(client, r) for r in (second, third)] == [None, None]
    await client.post(f"/staff/requests/{first}/close", json={"reason": "fixed"}, headers=W)
    for rid in (second, third):
        assert (await client.get(f"/staff/requests/{rid}", headers=STAFF)).json()["status"] == "open"
    policy = next(s for s in (await client.get("/admin/services", headers=ADMIN)).json()
                  if s["service_code"] == "INFORMATION")["duplicates"]
    assert policy == {"enabled": False, "radius_m": None, "window_hours": None}


async def test_duplicate_policy_per_service(client):
    far = {**POTHOLE, "lat": "39.9535"}  # ~100 m north
    original = await create(client)
    north = await create(client, far)
    assert await duplicate_of(client, north) is None  # the setting's 50 m
    r = await client.patch("/admin/services/POTHOLE", headers=ADMIN, json={"duplicates": {"radius_m": 200}})
    assert r.status_code == 200 and r.json()["duplicates"]["radius_m"] == 200
    between = {**POTHOLE, "lat": "39.9530"}  # ~45 m from north, ~45 m from the original: either is within 200 m
    assert await duplicate_of(client, await create(client, between)) in (original, north)
    assert await duplicate_of(client, await create(client, {**POTHOLE, "lat": "39.9545"})) == north  # ~110 m, ~210 m
    r = await client.patch("/admin/services/POTHOLE", headers=ADMIN, json={"duplicates": {"enabled": False}})
    assert r.status_code == 200
    assert await duplicate_of(client, await create(client)) is None
    bad = await client.patch("/admin/services/POTHOLE", headers=ADMIN, json={"duplicates": {"radius_m": -1}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "duplicates.radius_m"


async def test_address_only_reports_match_on_the_normalised_address(client):
    def at(address, **more):
        return {"service_code": "SIDEWALK", "address_string": address, **more}

    original = await create(client, at("1400 John F. Kennedy Boulevard"))
    assert await duplicate_of(client, await create(client, at("1400  john f kennedy BLVD"))) == original
    assert await duplicate_of(client, await create(client, at("1401 John F Kennedy Blvd"))) is None
    # a report with a position is matched by location only, never to an address-only one
    positioned = await create(client, at("1400 John F Kennedy Blvd", lat="39.9526", long="-75.1652"))
    assert await duplicate_of(client, positioned) is None
    # and an address-only report is not matched by location to a positioned one elsewhere on the list
    assert await duplicate_of(client, await create(client, at("Somewhere else"))) is None


async def test_duplicates_in_one_batch_follow_the_policy(uow_factory):
    async with uow_factory() as uow:
        info = service.ServiceEntry.of(await service.get_service(uow, "INFORMATION"), "America/New_York")
        walk = service.ServiceEntry.of(await service.get_service(uow, "SIDEWALK"), "America/New_York")

        def draft(entry, address):
            return service.RequestDraft(data=NewRequest(service_code=entry.service_code, address_string=address),
                                        service=entry, channel="phone", author="t")

        created = await service.create_requests(
            uow, drafts=[draft(info, "City Hall"), draft(info, "City Hall"), draft(walk, "5 Elm St."),
                         draft(walk, "5 elm st")],
            deps=intake_deps(radius_m=50, window_hours=72))
        assert [c.duplicate_of for c in created] == [None, None, None, created[2].id]
        await uow.commit()


# --- service levels that depend on an attribute ---------------------------------------------------


async def test_offensive_graffiti_within_one_business_day(uow_factory):
    async with uow_factory() as uow:
        entry = service.ServiceEntry.of(await service.get_service(uow, "GRAFFITI"), "America/New_York")
        monday = datetime(2026, 11, 30, 10, tzinfo=NY)

        def draft(offensive):
            return service.RequestDraft(data=NewRequest(service_code="GRAFFITI", address_string=f"{offensive} Wall St",
                                                        attributes={"SURFACE": "wall", "OFFENSIVE": offensive}),
                                        service=entry, channel="phone", author="t")

        created = await service.create_requests(uow, intake_deps(radius_m=0, window_hours=0), drafts=[draft("yes"), draft("no")],
                                                now=monday)
        assert "Expected by Tuesday, December 1 at 10:00 AM" in created[0].service_notice
        assert "Expected by Wednesday, December 9 at 10:00 AM" in created[1].service_notice
        await uow.commit()


async def test_service_level_rules_are_saved_and_checked(client):
    rule = {"attribute": "SIZE", "value": "large", "amount": 1, "unit": "business_days"}
    level = {"amount": 3, "unit": "business_days", "rules": [rule]}
    r = await client.patch("/admin/services/POTHOLE", headers=ADMIN, json={"service_level": level})
    assert r.status_code == 200 and r.json()["service_level"]["rules"] == [{**rule, "amount": 1.0}]
    for bad_rule, field in (({**rule, "attribute": "NOPE"}, "service_level.rules.0.attribute"),
                            ({**rule, "value": "gigantic"}, "service_level.rules.0.value"),
                            ({**rule, "amount": 800, "unit": "calendar_days"}, "service_level.rules.0.amount"),
                            ({**rule, "amount": float("inf")}, "service_level.rules.0.amount")):
        r = await client.patch("/admin/services/POTHOLE", headers=ADMIN, json={"service_level": {**level, "rules": [bad_rule]}},
                               ) if bad_rule["amount"] != float("inf") else await client.patch(
            "/admin/services/POTHOLE", headers={**ADMIN, "Content-Type": "application/json"},
            content=b'{"service_level": {"amount": 3, "unit": "business_days", "rules": [{"attribute": "SIZE", '
                    b'"value": "large", "amount": Infinity, "unit": "business_days"}]}}')
        assert r.status_code == 422, (bad_rule, r.text)
        assert any(e["field"] == field for e in r.json()["errors"]), r.json()
    # removing the attribute a rule uses is refused too
    r = await client.patch("/admin/services/POTHOLE", headers=ADMIN, json={"attributes": []})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "service_level.rules.0.attribute"


# --- transfers and missing references ---------------------------------------------------------------


async def test_after_a_transfer_the_notice_names_the_new_department(client):
    rid = await create(client)
    before = (await client.get(f"/requests/{rid}.json")).json()[0]["service_notice"]
    assert "(Streets Department)" in before
    r = await client.post(f"/staff/requests/{rid}/transfer", json={"department_code": "WATER"}, headers=W)
    assert r.status_code == 200, r.text
    doc = (await client.get(f"/requests/{rid}.json")).json()[0]
    assert "Streets" not in doc["service_notice"] and "(Water Department)" in doc["service_notice"]
    assert doc["service_notice"].startswith("Transferred to Water Department.")
    assert doc["agency_responsible"] == "Water Department"


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_writes_naming_something_missing_are_4xx(client, fmt):
    rid = await create(client)
    r = await client.post(f"/staff/requests/{rid}/merge", json={"into": "999999"}, headers=W)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "into", r.text
    r = await client.post(f"/staff/requests/{rid}/merge", json={"into": "not-a-number"}, headers=W)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "into"
    r = await client.post(f"/staff/requests/{rid}/transfer", json={"department_code": "NOWHERE"}, headers=W)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "department_code"
    r = await post(client, {**POTHOLE, "service_code": "NOPE"}, fmt=fmt)
    assert r.status_code == 404
    r = await client.post("/requests/999999/feedback", json={"score": 5, "feedback_token": "t"}, headers=W)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = await client.patch("/admin/services/POTHOLE", headers=ADMIN,
                           json={"service_level": {"amount": 1, "unit": "business_days", "calendar": "NOPE"}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "service_level.calendar"
    for path in ("/admin/services/NOPE",):
        assert (await client.patch(path, json={}, headers=ADMIN)).status_code == 404
        assert (await client.delete(path, headers=ADMIN)).status_code == 404
