"""Beyond the spec: lifecycle, service levels, duplicates, feedback, idempotency, first-contact
resolution, privacy, export, metrics and the events in the outbox, on SQLite and PostgreSQL."""

import asyncio
import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

import orjson
import pytest
import sqlalchemy as sa
from intake311_helpers import POTHOLE, REQUEST_FIELDS, create, create_with_token, intake_deps, post, xml

from citystat_common.demo import directory_rows
from citystat_common.events import parse_event
from citystat_common.testing import auth
from intake311 import metrics, service
from intake311.models import PLUMBING
from intake311.open311 import NewRequest

NY = ZoneInfo("America/New_York")
W = auth("call_center")
STAFF = auth("staff")


async def outbox(uow_factory) -> list[tuple[str, dict]]:
    async with uow_factory() as uow:
        rows = (await uow.session.execute(sa.select(PLUMBING.outbox).order_by(PLUMBING.outbox.c.id))).all()
    out = []
    for row in rows:
        env, _ = parse_event(row.payload)
        assert env.subject == row.key == env.data.get("service_request_id")
        out.append((env.type, env.data))
    return out


async def test_lifecycle_notes_and_events(client, uow_factory):
    rid = await create(client)
    steps = [
        ("acknowledge", {}, "acknowledged"),
        ("start", {"text": "Crew scheduled for Tuesday."}, "in_progress"),
        ("close", {"reason": "fixed", "text": "Filled with hot asphalt."}, "closed"),
        ("reopen", {"text": "Resident says it is back."}, "open"),
        ("transfer", {"department_code": "WATER", "text": "Caused by a leaking service line."}, "open"),
        ("close", {"reason": "referred"}, "closed"),
    ]
    for action, body, detailed in steps:
        r = await client.post(f"/staff/requests/{rid}/{action}", json=body, headers=W)
        assert r.status_code == 200, r.text
        assert r.json()["detailed_status"] == detailed
        assert r.json()["phone"] is None  # the call-center key has no staff scope: no personal data
    doc = (await client.get(f"/requests/{rid}.json", params={"extensions": "true"})).json()[0]
    assert doc["status"] == "closed" and doc["agency_responsible"] == "Water Department"
    assert doc["extended_attributes"]["closure_reason"] == "referred"
    assert [n["type"] for n in doc["notes"]] == [
        "created", "acknowledged", "in_progress", "closed", "reopened", "transferred", "closed"]
    assert all(n["author"] == "call_center" and n["datetime"] for n in doc["notes"])
    assert doc["notes"][2]["description"] == "Crew scheduled for Tuesday."
    assert doc["status_notes"] == "Closed: referred."
    events = await outbox(uow_factory)
    assert [t for t, _ in events] == [
        "intake311.request.created", "intake311.request.updated", "intake311.request.updated",
        "intake311.request.closed", "intake311.request.updated", "intake311.request.updated",
        "intake311.request.closed"]
    created = events[0][1]
    assert created["department_code"] == "STREETS" and created["channel"] == "phone"
    assert created["service_name"] == "Pothole" and created["expected_datetime"] and created["lat"] == 39.9526
    transferred = events[5][1]
    assert transferred["previous_department_code"] == "STREETS" and transferred["department_code"] == "WATER"
    assert transferred["change"] == "transferred"
    closed = events[-1][1]
    assert closed["status"] == "closed" and closed["closure_reason"] == "referred" and closed["closed_datetime"]


async def test_invalid_transitions_are_conflicts(client):
    rid = await create(client)
    await client.post(f"/staff/requests/{rid}/start", json={}, headers=W)
    r = await client.post(f"/staff/requests/{rid}/acknowledge", json={}, headers=W)
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    assert (await client.post(f"/staff/requests/{rid}/reopen", json={}, headers=W)).status_code == 409
    r = await client.post(f"/staff/requests/{rid}/close", json={"reason": "because"}, headers=W)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason"
    r = await client.post(f"/staff/requests/{rid}/transfer", json={"department_code": "NOWHERE"}, headers=W)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "department_code"
    assert (await client.post("/staff/requests/424242/acknowledge", json={}, headers=W)).status_code == 404
    assert (await client.post(f"/staff/requests/{rid}/acknowledge", json={})).status_code == 401
    assert (await client.post(f"/staff/requests/{rid}/acknowledge", json={}, headers=STAFF)).status_code == 403


async def test_private_note_is_not_public(client):
    rid = await create(client)
    r = await client.post(f"/staff/requests/{rid}/notes", json={"text": "Caller was rude.", "public": False}, headers=W)
    assert r.status_code == 200
    public = (await client.get(f"/requests/{rid}.json", params={"extensions": "true"})).json()[0]
    assert "rude" not in orjson.dumps(public).decode()
    staff = (await client.get(f"/staff/requests/{rid}", headers=STAFF)).json()
    assert staff["notes"][-1] == {**staff["notes"][-1], "description": "Caller was rude.", "public": False}


async def test_expected_time_across_weekend_and_holiday(uow_factory):
    async with uow_factory() as uow:
        pothole = await service.get_service(uow, "POTHOLE")  # 3 business days, the seeded city calendar
        data = NewRequest(service_code="POTHOLE", address_string="1 Main St", attributes={"SIZE": "small"})
        # Friday 6 November 16:00: Saturday, Sunday and Veterans Day (Wednesday 11) do not count
        req = await service.create_request(
            uow, data=data, service=pothole, channel="web", author="t",
            deps=intake_deps(radius_m=0, window_hours=0), now=datetime(2026, 11, 6, 16, tzinfo=NY),
        )
        assert req.expected_datetime == datetime(2026, 11, 12, 16, tzinfo=NY)
        assert "Expected by Thursday, November 12 at 4:00 PM (Streets Department)." in req.service_notice
        # Wednesday 25 November 14:00: Thanksgiving, the city's own Friday holiday and the weekend
        req = await service.create_request(
            uow, data=data, service=pothole, channel="web", author="t",
            deps=intake_deps(radius_m=0, window_hours=0), now=datetime(2026, 11, 25, 14, tzinfo=NY),
        )
        assert req.expected_datetime == datetime(2026, 12, 2, 14, tzinfo=NY)
        await uow.commit()


async def test_first_contact_resolution(client, uow_factory):
    r = await post(client, {"service_code": "INFORMATION", "address_string": "City Hall", "first_contact_resolution": "true",
                            "status_notes": "Told the caller the recycling days."})
    assert r.status_code == 201, r.text
    rid = r.json()[0]["service_request_id"]
    doc = (await client.get(f"/requests/{rid}.json", params={"extensions": "true"})).json()[0]
    assert doc["status"] == "closed" and doc["status_notes"] == "Told the caller the recycling days."
    assert doc["extended_attributes"]["first_contact_resolution"] is True
    assert doc["extended_attributes"]["closure_reason"] == "no_further_action"
    events = await outbox(uow_factory)
    assert [t for t, _ in events] == ["intake311.request.created", "intake311.request.closed"]
    assert all(d["first_contact_resolution"] and d["status"] == "closed" for _, d in events)


async def test_duplicate_detection_merge_and_unlink(client, uow_factory):
    original = await create(client)
    r = await post(client, {**POTHOLE, "lat": "39.95262", "long": "-75.16522"}, role="web")  # about 3 m away
    dup = r.json()[0]["service_request_id"]
    assert f"request {original}" in r.json()[0]["service_notice"]
    far = await create(client, {**POTHOLE, "lat": "39.9600"})  # about 800 m away
    other = await create(client, {"service_code": "STREETLIGHT", "lat": "39.9526", "long": "-75.1652",
                                  "attribute[ISSUE]": "out"})
    ext = {d["service_request_id"]: d["extended_attributes"]["duplicate_of"]
           for d in (await client.get("/requests.json", params={"extensions": "true"})).json()}
    assert ext == {original: None, dup: original, far: None, other: None}
    assert (await outbox(uow_factory))[1][1]["duplicate_of"] == original

    # staff merge: the far one is the same pothole after all; it is closed as a duplicate
    r = await client.post(f"/staff/requests/{far}/merge", json={"into": dup}, headers=W)
    assert r.status_code == 200, r.text
    assert r.json()["duplicate_of"] == original and r.json()["closure_reason"] == "duplicate"  # merged into the root
    r = await client.post(f"/staff/requests/{far}/unlink", headers=W)
    assert r.status_code == 200 and r.json()["duplicate_of"] is None and r.json()["status"] == "open"
    assert (await client.post(f"/staff/requests/{far}/unlink", headers=W)).status_code == 409
    assert (await client.post(f"/staff/requests/{far}/merge", json={"into": far}, headers=W)).status_code == 422

    # closing the original closes its open duplicates with it
    await client.post(f"/staff/requests/{original}/close", json={"reason": "fixed"}, headers=W)
    linked = (await client.get(f"/requests/{dup}.json", params={"extensions": "true"})).json()[0]
    assert linked["status"] == "closed" and linked["extended_attributes"]["closure_reason"] == "duplicate"
    listed = (await client.get("/staff/requests", params={"duplicates_of": original}, headers=STAFF)).json()
    assert [i["service_request_id"] for i in listed["items"]] == [dup]


async def test_feedback_after_closure(client, uow_factory):
    rid, token = await create_with_token(client)
    r = await client.post(f"/requests/{rid}/feedback", json={"score": 4, "comment": "ok", "feedback_token": token}, headers=W)
    assert r.status_code == 409  # not closed yet
    await client.post(f"/staff/requests/{rid}/close", json={"reason": "fixed"}, headers=W)
    bad = await client.post(f"/requests/{rid}/feedback", json={"score": 6, "feedback_token": token}, headers=W)
    assert bad.status_code == 422
    r = await client.post(f"/requests/{rid}/feedback", json={"score": 4, "comment": "Fixed fast.", "feedback_token": token},
                          headers=W)
    assert r.status_code == 201, r.text
    again = await client.post(f"/requests/{rid}/feedback", json={"score": 1, "feedback_token": token}, headers=W)
    assert again.status_code == 409
    staff = (await client.get(f"/staff/requests/{rid}", headers=STAFF)).json()
    assert staff["feedback"]["score"] == 4 and staff["feedback"]["comment"] == "Fixed fast."
    types = [(t, d) for t, d in await outbox(uow_factory)]
    assert types[-1][0] == "intake311.request.feedback"
    assert types[-1][1]["score"] == 4 and types[-1][1]["department_code"] == "STREETS"
    assert types[-1][1]["closed_datetime"]
    text = (await client.get("/metrics")).text
    assert 'citystat_intake311_feedback_score_count{department="STREETS"}' in text


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_idempotency_key_retry(client, fmt):
    headers = {"Idempotency-Key": f"call-{fmt}-0001"}
    first = await post(client, POTHOLE, fmt=fmt, headers=headers)
    second = await post(client, POTHOLE, fmt=fmt, headers=headers)
    as_json = await post(client, POTHOLE, fmt="json", headers=headers)  # the same key in the other format
    assert first.status_code == second.status_code == as_json.status_code == 201
    assert second.headers["Idempotent-Replay"] == "true"
    if fmt == "xml":
        assert xml(first)[0].findtext("service_request_id") == xml(second)[0].findtext("service_request_id")
        rid = xml(first)[0].findtext("service_request_id")
        assert xml(first)[0].findtext("feedback_token") and xml(second)[0].find("feedback_token") is None
    else:
        # the same answer, but the feedback token only once: only its hash is stored
        assert first.json()[0]["feedback_token"] and "feedback_token" not in second.json()[0]
        assert [{k: v for k, v in first.json()[0].items() if k != "feedback_token"}] == second.json()
        rid = first.json()[0]["service_request_id"]
    assert as_json.json()[0]["service_request_id"] == rid
    listed = (await client.get("/staff/requests", headers=STAFF)).json()
    assert listed["total"] == 1
    # the same key with a different request is refused in the spec's error shape
    r = await post(client, {**POTHOLE, "description": "another"}, fmt=fmt, headers=headers)
    assert r.status_code == 400 and "Idempotency-Key" in r.text
    # concurrent retries still make one request
    key = {"Idempotency-Key": f"burst-{fmt}"}
    results = await asyncio.gather(*[post(client, POTHOLE, fmt="json", headers=key) for _ in range(4)])
    assert len({r.json()[0]["service_request_id"] for r in results}) == 1
    assert (await client.get("/staff/requests", headers=STAFF)).json()["total"] == 2


async def test_privacy_of_the_public_api(client):
    people = [row for row in directory_rows() if row.get("person_email")][:3]
    secrets = []
    for i, person in enumerate(people):
        first, last = person["person_name"].split(" ", 1)
        fields = {**POTHOLE, "lat": str(39.9 + i / 100), "email": person["person_email"], "phone": person["person_phone"],
                  "first_name": first, "last_name": last, "device_id": f"device-secret-{i}", "account_id": f"acct-secret-{i}"}
        await create(client, fields)
        secrets += [person["person_email"], person["person_phone"], last, f"device-secret-{i}", f"acct-secret-{i}"]
    await client.post("/staff/requests/1/close", json={"reason": "fixed"}, headers=W)
    public = [
        await client.get("/requests.json", params={"extensions": "true"}),
        await client.get("/requests.xml", params={"extensions": "true"}),
        await client.get("/open311/v2/requests.json"),
        await client.get("/requests/1.xml", params={"extensions": "true"}),
        await client.get("/requests/2.json", params={"extensions": "true"}),
        await client.get("/export/requests.csv"),
    ]
    for r in public:
        assert r.status_code == 200
        for secret in secrets:
            assert secret not in r.text, (r.url, secret)
    # the staff API shows them, to the staff scope only
    assert (await client.get("/staff/requests/1")).status_code == 401
    assert (await client.get("/staff/requests/1", headers=W)).status_code == 403
    staff = (await client.get("/staff/requests/1", headers=STAFF)).json()
    assert staff["email"] == people[0]["person_email"] and staff["phone"] == people[0]["person_phone"]
    assert staff["account_id"] == "acct-secret-0"


async def test_bulk_export_csv(client):
    a = await create(client)
    await create(client, {"service_code": "GRAFFITI", "address_string": "=HYPERLINK(\"x\")", "attribute[SURFACE]": "wall",
                          "attribute[OFFENSIVE]": "no"}, role="web")
    r = await client.get("/export/requests.csv", params={"start_date": "2026-01-01", "end_date": "2100-01-01"})
    assert r.status_code == 422  # more than 366 days
    r = await client.get("/export/requests.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["service_request_id"] for row in rows] == [a, str(int(a) + 1)]
    assert rows[0]["agency_responsible"] == "Streets Department" and rows[0]["channel"] == "phone"
    assert rows[1]["address"].startswith("'=")  # no spreadsheet formulas
    assert rows[0]["expected_datetime"] and rows[0]["status"] == "open"


async def test_staff_list_filters(client):
    a = await create(client)
    b = await create(client, {"service_code": "NOISE", "address_string": "9 Oak", "attribute[SOURCE]": "alarm"}, role="web")
    await client.post(f"/staff/requests/{b}/acknowledge", json={}, headers=W)

    async def ids(**params):
        r = await client.get("/staff/requests", params=params, headers=STAFF)
        assert r.status_code == 200, r.text
        return [i["service_request_id"] for i in r.json()["items"]]

    assert await ids(department="LI") == [b]
    assert await ids(detailed_status="acknowledged") == [b]
    assert await ids(channel="phone") == [a]
    assert await ids(overdue="true") == []
    assert await ids(overdue="false") == [b, a]


async def test_metrics_and_backlog_gauges(client, uow_factory):
    await create(client)
    await create(client, {"service_code": "NOISE", "address_string": "9 Oak", "attribute[SOURCE]": "alarm"}, role="web")
    async with uow_factory() as uow:
        await uow.session.execute(sa.text("UPDATE service_requests SET expected_datetime = requested_datetime WHERE service_code = 'NOISE'"))
        await uow.commit()
    async with uow_factory() as uow:
        open_, overdue, depts = await service.backlog(uow)
    assert open_ == {"STREETS": 1, "LI": 1} and overdue == {"LI": 1} and "WATER" in depts
    metrics.set_backlog(open_, overdue, depts)
    text = (await client.get("/metrics")).text
    assert 'citystat_intake311_requests_created_total{channel="phone",department="STREETS",service_code="POTHOLE"}' in text
    assert 'citystat_intake311_open_backlog{department="LI"} 1.0' in text
    assert 'citystat_intake311_requests_overdue{department="LI"} 1.0' in text
    assert 'citystat_intake311_requests_overdue{department="WATER"} 0.0' in text


async def test_public_get_shape_after_transfer_keeps_spec_fields(client):
    rid = await create(client)
    await client.post(f"/staff/requests/{rid}/transfer", json={"department_code": "WATER"}, headers=W)
    doc = (await client.get(f"/requests/{rid}.json")).json()[0]
    assert list(doc) == REQUEST_FIELDS and doc["agency_responsible"] == "Water Department"


async def test_duplicate_window_and_radius_are_settings(uow_factory):
    async with uow_factory() as uow:
        pothole = await service.get_service(uow, "POTHOLE")
        data = NewRequest(service_code="POTHOLE", lat=39.95, long=-75.16, attributes={"SIZE": "small"})
        kw = {"service": pothole, "channel": "web", "author": "t"}
        old = await service.create_request(uow, intake_deps(radius_m=50, window_hours=72), data=data,
                                           now=datetime(2026, 11, 1, 9, tzinfo=NY), **kw)
        late = await service.create_request(uow, intake_deps(radius_m=50, window_hours=72), data=data,
                                            now=datetime(2026, 11, 5, 9, tzinfo=NY), **kw)
        assert late.duplicate_of is None  # 96 hours later: outside the 72-hour window
        wide = await service.create_request(uow, intake_deps(radius_m=50, window_hours=24 * 7), data=data,
                                            now=datetime(2026, 11, 5, 10, tzinfo=NY), **kw)
        assert wide.duplicate_of == old.id  # the oldest open original, never a duplicate of a duplicate
        near = NewRequest(service_code="POTHOLE", lat=39.9504, long=-75.16, attributes={"SIZE": "small"})  # ~45 m
        assert (await service.create_request(uow, intake_deps(radius_m=50, window_hours=72), data=near,
                                             now=datetime(2026, 11, 5, 11, tzinfo=NY), **kw)).duplicate_of == late.id
        assert (await service.create_request(uow, intake_deps(radius_m=30, window_hours=72), data=near,
                                             now=datetime(2026, 11, 5, 12, tzinfo=NY), **kw)).duplicate_of is None
