"""Issue 16, inputs at the edges: every datetime or date intake311 reads is held to the plausible
range (1970 to 2100) before any zone arithmetic, service levels must be meetable within two years on
their calendar (and a bad row still never hangs or fails a POST), and number and datetime
attributes have bounds. Open311 routes answer with the spec's error document, the rest with
problem+json; never a 500."""

import pytest
import sqlalchemy as sa
from intake311_helpers import POTHOLE, assert_error_doc, post

from citystat_common.testing import auth

ADMIN = auth("admin")
LATE = "9999-12-31T23:00:00-05:00"  # overflows when moved to UTC
EARLY = "0001-01-01T00:00:00+05:00"  # overflows the other way
TRASH = {"service_code": "MISSED_TRASH", "address_string": "2100 Spruce St", "attribute[COLLECTION]": "trash"}
ONE_MINUTE_A_WEEK = {"name": "One minute a week", "opens": "08:00", "closes": "08:01", "workdays": [0],
                     "federal_holidays": False}


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("value", [LATE, EARLY, "1969-12-31", "2100-01-01T00:00:00Z"])
async def test_datetime_attribute_out_of_range_is_a_spec_error(client, fmt, value):
    r = await post(client, {**TRASH, "attribute[SCHEDULED]": value}, fmt=fmt)
    assert_error_doc(r, 400, fmt, contains="between 1970-01-01 and 2100-01-01")


async def test_datetime_attribute_in_range_is_kept(client):
    r = await post(client, {**TRASH, "attribute[SCHEDULED]": "2026-11-23T07:00:00-05:00"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("name", ["start_date", "end_date", "updated_after", "updated_before"])
@pytest.mark.parametrize("value", [LATE, EARLY])
async def test_search_datetimes_out_of_range_are_spec_errors(client, fmt, name, value):
    for prefix in ("", "/open311/v2"):
        r = await client.get(f"{prefix}/requests.{fmt}", params={name: value})
        assert_error_doc(r, 400, fmt, contains=name)


@pytest.mark.parametrize("params", [{"start_date": EARLY}, {"end_date": LATE}, {"start_date": LATE},
                                    {"end_date": EARLY}, {"start_date": EARLY, "end_date": LATE}])
async def test_export_datetimes_out_of_range_are_422(client, params):
    r = await client.get("/export/requests.csv", params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["field"] == "start_date" and "1970" in r.json()["detail"]


async def test_calendar_holidays_out_of_range_are_422(client):
    for day in ("9999-12-31", "0001-01-01"):
        r = await client.put("/admin/calendars/EDGE", headers=ADMIN, json={"name": "x", "holidays": [day]})
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == "holidays.0"


# --- service levels -------------------------------------------------------------------------------


async def test_unmeetable_service_level_is_refused_when_saved(client):
    assert (await client.put("/admin/calendars/TINY", headers=ADMIN, json=ONE_MINUTE_A_WEEK)).status_code == 200
    level = {"amount": 10_000, "unit": "business_hours", "calendar": "TINY"}
    r = await client.patch("/admin/services/POTHOLE", headers=ADMIN, json={"service_level": level})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "service_level.amount" and "730 days" in r.json()["detail"]
    r = await client.post("/admin/services", headers=ADMIN, json={
        "service_code": "SLOW", "service_name": "Slow", "department_code": "STREETS", "service_level": level})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "service_level.amount"
    for too_long in ({"amount": 1000, "unit": "calendar_days"}, {"amount": 600, "unit": "business_days"},
                     {"amount": 1.5, "unit": "business_days"}):
        r = await client.patch("/admin/services/POTHOLE", headers=ADMIN, json={"service_level": too_long})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "service_level.amount", (too_long, r.text)
    # what the calendar can meet is fine: 10 minutes of business time is ten weeks on it
    r = await client.patch("/admin/services/POTHOLE", headers=ADMIN,
                           json={"service_level": {"amount": 10 / 60, "unit": "business_hours", "calendar": "TINY"}})
    assert r.status_code == 200, r.text


async def test_a_calendar_change_cannot_strand_a_service(client):
    r = await client.patch("/admin/services/SIDEWALK", headers=ADMIN,
                           json={"service_level": {"amount": 500, "unit": "business_hours", "calendar": "CITY"}})
    assert r.status_code == 200, r.text
    # 500 business hours are 56 days on CITY's hours, and 30,000 weeks at one minute a week
    r = await client.put("/admin/calendars/CITY", headers=ADMIN, json=ONE_MINUTE_A_WEEK)
    assert r.status_code == 422, r.text
    assert "service SIDEWALK" in r.json()["detail"]
    calendars = {c["code"]: c for c in (await client.get("/admin/calendars", headers=ADMIN)).json()}
    assert calendars["CITY"]["closes"] == "17:00"  # nothing was saved


@pytest.mark.parametrize("amount,unit", [(10_000, "business_hours"), (1e308, "calendar_days"), (-5, "business_hours"),
                                         (3, "fortnights")])
async def test_a_bad_service_level_row_never_fails_a_post(client, uow_factory, amount, unit):
    """A row written past the checks (by hand, or before them) still takes requests, promising no date."""
    async with uow_factory() as uow:
        await uow.session.execute(sa.text(
            "INSERT INTO calendars (code, name, opens, closes, workdays, holidays, federal_holidays, updated_at) "
            "VALUES ('TINY', 'tiny', '08:00', '08:01', '[0]', '[]', false, CURRENT_TIMESTAMP)"))
        await uow.session.execute(sa.text(
            "UPDATE services SET sla_amount = :a, sla_unit = :u, calendar_code = 'TINY' WHERE service_code = 'POTHOLE'"),
            {"a": amount, "u": unit})
        await uow.commit()
    r = await post(client, POTHOLE)
    assert r.status_code == 201, r.text
    assert "Streets Department will tell you when to expect it." in r.json()[0]["service_notice"]
    rid = r.json()[0]["service_request_id"]
    assert (await client.get(f"/requests/{rid}.json")).json()[0]["expected_datetime"] is None


# --- number and datetime attributes ---------------------------------------------------------------


@pytest.mark.parametrize("value,message", [
    ("1e300", "between"), ("-3", "between 0 and"), ("NaN", "must be a number"), ("inf", "must be a number"),
    ("1_000", "must be a number"), ("0x10", "must be a number"), ("9" * 400, "must be a number"),
])
async def test_number_attributes_are_bounded(client, value, message):
    fields = {"service_code": "ABANDONED_VEHICLE", "address_string": "5 Elm St", "attribute[DAYS_PARKED]": value}
    assert_error_doc(await post(client, fields), 400, "json", contains=message)


async def test_number_and_datetime_bounds_per_attribute(client):
    attrs = [
        {"code": "FLOORS", "datatype": "number", "description": "Floors", "minimum": 1, "maximum": 200},
        {"code": "SEEN", "datatype": "datetime", "description": "When", "days_before": 30, "days_after": 0},
    ]
    r = await client.patch("/admin/services/SIDEWALK", headers=ADMIN, json={"attributes": attrs})
    assert r.status_code == 200, r.text
    base = {"service_code": "SIDEWALK", "address_string": "7 Pine St"}
    assert_error_doc(await post(client, {**base, "attribute[FLOORS]": "201"}), 400, "json", contains="between 1 and 200")
    assert_error_doc(await post(client, {**base, "attribute[SEEN]": "2030-01-01"}), 400, "json",
                     contains="at most 0 days after now")
    assert_error_doc(await post(client, {**base, "attribute[SEEN]": "2020-01-01"}), 400, "json",
                     contains="at most 30 days before now")
    assert (await post(client, {**base, "attribute[FLOORS]": "3"})).status_code == 201


@pytest.mark.parametrize("attribute,field", [
    ({"code": "N", "datatype": "number", "description": "n", "maximum": 1e300}, "attributes.0.maximum"),
    ({"code": "N", "datatype": "number", "description": "n", "minimum": 5, "maximum": 1}, "attributes.0"),
    ({"code": "S", "datatype": "string", "description": "s", "minimum": 0}, "attributes.0"),
    ({"code": "D", "datatype": "datetime", "description": "d", "days_after": -1}, "attributes.0.days_after"),
])
async def test_attribute_bounds_are_validated(client, attribute, field):
    r = await client.patch("/admin/services/SIDEWALK", headers=ADMIN, json={"attributes": [attribute]})
    assert r.status_code == 422, r.text
    assert any(e["field"] == field for e in r.json()["errors"]), r.json()


# --- NUL text refused at the door -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("prefix", ["", "/open311/v2"])
async def test_nul_on_open311_routes_is_the_spec_error_document(client, fmt, prefix):
    """The shared guard answers problem+json 422; an Open311 caller reads the spec's errors instead."""
    answers = [
        await post(client, {**POTHOLE, "description": "a hole\x00"}, fmt=fmt),  # form body
        await client.post(f"{prefix}/requests.{fmt}", json={**POTHOLE, "description": "x\x00"}),  # JSON body
        await client.get(f"{prefix}/requests.{fmt}", params={"service_code": "POT\x00HOLE"}),  # query
        await client.get(f"{prefix}/services/POT%00HOLE.{fmt}"),  # path
    ]
    for r in answers:
        errors = assert_error_doc(r, 400, fmt, contains="NUL character")
        assert errors[0]["code"] == 400


async def test_nul_elsewhere_stays_problem_json(client):
    r = await client.put("/admin/calendars/EDGE", headers=ADMIN, json={"name": "nul\x00"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    r = await client.get("/requests.js%00on")  # not a format: the XML document, as the route itself answers
    assert_error_doc(r, 400, "xml", contains="NUL character")
