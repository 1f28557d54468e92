"""Every validation path of the Open311 routes answers with the spec's error document and the
right status, several errors at once where several things are wrong; never a 500."""

import pytest
from intake311_helpers import POTHOLE, assert_error_doc, post

from citystat_common.testing import TEST_KEYS, auth

CASES = [
    ("bad lat", {**POTHOLE, "lat": "95"}, 400, "lat must be between -90 and 90"),
    ("bad long", {**POTHOLE, "long": "-181"}, 400, "long must be between -180 and 180"),
    ("lat not a number", {**POTHOLE, "lat": "north"}, 400, "lat must be a number"),
    ("lat without long", {"service_code": "POTHOLE", "lat": "39.9", "attribute[SIZE]": "small"}, 400, "together"),
    ("no location", {"service_code": "POTHOLE", "attribute[SIZE]": "small", "lat": "", "long": ""}, 400,
     "a location is required"),
    ("unknown service", {**POTHOLE, "service_code": "UNICORNS"}, 404, "UNICORNS"),
    ("missing service_code", {"lat": "39.9", "long": "-75.1"}, 400, "service_code is required"),
    ("missing required attribute", {"service_code": "POTHOLE", "lat": "39.9", "long": "-75.1"}, 400,
     "attribute[SIZE] is required"),
    ("value not in list", {**POTHOLE, "attribute[SIZE]": "enormous"}, 400, "'enormous' is not one of the allowed values"),
    ("multivalue not in list", {"service_code": "DUMPING", "address_string": "x", "attribute[MATERIAL][]": "gold"}, 400,
     "'gold' not in the allowed values"),
    ("number attribute", {"service_code": "ABANDONED_VEHICLE", "address_string": "x", "attribute[DAYS_PARKED]": "a week"},
     400, "must be a number"),
    ("datetime attribute", {"service_code": "MISSED_TRASH", "address_string": "x", "attribute[COLLECTION]": "trash",
                            "attribute[SCHEDULED]": "monday-ish"}, 400, "ISO 8601"),
    ("unknown attribute", {**POTHOLE, "attribute[COLOUR]": "red"}, 400, "not an attribute of this service"),
    ("4001-character description", {**POTHOLE, "description": "x" * 4001}, 400, "description must be at most 4000"),
    ("bad email", {**POTHOLE, "email": "not-an-email"}, 400, "email"),
    ("bad phone", {**POTHOLE, "phone": "call me maybe"}, 400, "phone"),
    ("bad media_url", {**POTHOLE, "media_url": "javascript:alert(1)"}, 400, "media_url"),
    ("bad channel", {**POTHOLE, "channel": "carrier_pigeon"}, 400, "channel must be one of"),
    ("control characters", {**POTHOLE, "description": "bell\x07"}, 400, "control characters"),
    ("closure without fcr", {**POTHOLE, "closure_reason": "fixed"}, 400, "first_contact_resolution"),
]


@pytest.mark.parametrize("fmt", ["xml", "json"])
async def test_post_validation(client, fmt):
    # one database for all the cases: each case is its own request, reported by name on failure
    for name, fields, status, message in CASES:
        r = await post(client, fields, fmt=fmt)
        try:
            assert_error_doc(r, status, fmt, contains=message)
        except AssertionError as exc:
            raise AssertionError(f"case {name!r}: {exc}") from exc
    assert (await client.get("/staff/requests", headers=auth("staff"))).json()["total"] == 0


async def test_exactly_4000_characters_is_fine(client):
    r = await post(client, {**POTHOLE, "description": "x" * 4000})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("fmt", ["xml", "json"])
async def test_several_errors_at_once(client, fmt):
    r = await post(client, {"service_code": "POTHOLE", "lat": "95", "long": "500", "description": "d" * 4001,
                            "attribute[SIZE]": "huge"}, fmt=fmt)
    errors = assert_error_doc(r, 400, fmt, count=4)
    assert all(e["code"] == 400 for e in errors)


GET_CASES = [
    ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-05-01T00:00:00Z"}, "more than 90 days"),
    ({"start_date": "2026-03-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, "must not be before"),
    ({"start_date": "yesterday"}, "start_date must be an ISO 8601"),
    ({"status": "pending"}, "status must be"),
    ({"page_size": "0"}, "page_size"),
    ({"page": "x"}, "page must be"),
    ({"bbox": "1,2"}, "bbox"),
    ({"lat": "39.9"}, "radius"),
    ({"extensions": "maybe"}, "extensions"),
]


@pytest.mark.parametrize("fmt", ["xml", "json"])
async def test_get_requests_validation(client, fmt):
    for params, message in GET_CASES:
        assert_error_doc(await client.get(f"/requests.{fmt}", params=params), 400, fmt, contains=message)


JUNK = [
    {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
    {"content": b"[1, 2]", "headers": {"Content-Type": "application/json"}},
    {"content": b'{"service_code": {"a": 1}, "lat": [1]}', "headers": {"Content-Type": "application/json"}},
    {"content": b"service_code=\xff\xfe", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
    {"content": b"<request/>", "headers": {"Content-Type": "application/xml"}},
    {"content": b"--x\r\nbroken", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
    {"content": b"attribute[SIZE][][]=1&attribute[=2&lat=1e999&long=-1e999&service_code=POTHOLE"},
]


async def test_junk_input_is_a_400_not_a_500(client):
    for kwargs in JUNK:
        r = await client.post("/requests.json", params={"api_key": TEST_KEYS["call_center"]}, **kwargs)
        try:
            assert_error_doc(r, 400, "json")
        except AssertionError as exc:
            raise AssertionError(f"{kwargs['content']!r}: {exc}") from exc


async def test_multipart_form_is_accepted(client):
    r = await client.post("/requests.json", data={**POTHOLE, "api_key": TEST_KEYS["web"]}, files={"media": ("a.jpg", b"x")})
    assert r.status_code == 201, r.text


async def test_get_routes_ignore_unknown_and_junk_parameters(client):
    for path in ("/services.json", "/services/POTHOLE.json", "/discovery.json", "/requests.json"):
        r = await client.get(path, params={"foo": "bar", "api_key": "anything", "jurisdiction_id": ""})
        assert r.status_code == 200, (path, r.text)


@pytest.mark.parametrize("fmt", ["xml", "json"])
async def test_database_down_is_a_503_error_document(fmt):
    from citystat_common.testing import TEST_KEY_ENTRIES, app_client
    from intake311.config import Settings
    from intake311.main import create_app

    settings = Settings(database_url="postgresql+asyncpg://postgres@127.0.0.1:9/nowhere", api_keys=TEST_KEY_ENTRIES,
                        kafka_bootstrap="127.0.0.1:9")
    async with app_client(create_app(settings)) as client:
        assert_error_doc(await client.get(f"/services.{fmt}"), 503, fmt, contains="unavailable")
        r = await post(client, POTHOLE, fmt=fmt)
        assert_error_doc(r, 503, fmt)
        assert r.headers["Retry-After"] == "5"
