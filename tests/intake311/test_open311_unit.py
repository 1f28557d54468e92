"""Open311 parsing, validation and rendering, and the service-level arithmetic: pure functions, no I/O."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

import pytest

from intake311 import service
from intake311.models import Calendar
from intake311.open311 import params_from, validate_attributes, validate_new_request
from intake311.open311_documents import Open311Error, to_xml
from intake311.open311_search import parse_search

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)

DEFS = [
    {"code": "SIZE", "datatype": "singlevaluelist", "required": True, "description": "size", "order": 1,
     "values": [{"key": "small", "name": "Small"}, {"key": "large", "name": "Large"}]},
    {"code": "MATERIAL", "datatype": "multivaluelist", "required": False, "description": "m", "order": 2,
     "values": [{"key": "tires", "name": "Tires"}, {"key": "furniture", "name": "Furniture"}]},
    {"code": "COUNT", "datatype": "number", "required": False, "description": "n", "order": 3},
    {"code": "WHEN", "datatype": "datetime", "required": False, "description": "w", "order": 4},
    {"code": "INFO", "datatype": "string", "variable": False, "description": "read only", "order": 5},
]


def test_params_empty_means_missing_and_first_non_empty_wins():
    p = params_from([("description", ""), ("api_key", ""), ("api_key", "k"), ("lat", " 39.9 ")])
    assert p.get("description") is None and p.get("api_key") == "k" and p.get("lat") == "39.9"


def test_params_attribute_forms():
    p = params_from([("attribute[SIZE]", "large"), ("attribute[MATERIAL][]", "tires"), ("attribute[MATERIAL][]", "furniture")])
    assert p.attributes == {"SIZE": ["large"], "MATERIAL": ["tires", "furniture"]}
    j = params_from({"attribute": {"SIZE": "large", "MATERIAL": ["tires"]}, "attribute[COUNT]": 3}.items())
    assert j.attributes == {"SIZE": ["large"], "MATERIAL": ["tires"], "COUNT": ["3"]}


def test_attributes_valid_and_normalised():
    p = params_from([("attribute[SIZE]", "small"), ("attribute[MATERIAL][]", "tires"), ("attribute[COUNT]", "4"),
                     ("attribute[WHEN]", "2026-11-20T09:00")])
    out, errors = validate_attributes(p, DEFS, NY)
    assert errors == []
    assert out == {"SIZE": "small", "MATERIAL": ["tires"], "COUNT": 4, "WHEN": "2026-11-20T14:00:00+00:00"}


@pytest.mark.parametrize(
    "pairs,message",
    [
        ([], "attribute[SIZE] is required"),
        ([("attribute[SIZE]", "huge")], "'huge' is not one of the allowed values"),
        ([("attribute[SIZE]", "small"), ("attribute[SIZE]", "large")], "takes a single value"),
        ([("attribute[SIZE]", "small"), ("attribute[MATERIAL][]", "gold")], "'gold' not in the allowed values"),
        ([("attribute[SIZE]", "small"), ("attribute[COUNT]", "many")], "must be a number"),
        ([("attribute[SIZE]", "small"), ("attribute[COUNT]", "nan")], "must be a number"),
        ([("attribute[SIZE]", "small"), ("attribute[WHEN]", "last tuesday")], "ISO 8601"),
        ([("attribute[SIZE]", "small"), ("attribute[NOPE]", "x")], "not an attribute of this service"),
        ([("attribute[SIZE]", "small"), ("attribute[INFO]", "x")], "not an attribute of this service"),
    ],
)
def test_attribute_errors(pairs, message):
    _, errors = validate_attributes(params_from(pairs), DEFS, NY)
    assert any(message in d for _, d in errors), errors
    assert all(code == 400 for code, _ in errors)


def test_new_request_collects_every_error():
    svc = SimpleNamespace(attributes=DEFS)
    p = params_from([("service_code", "X"), ("lat", "91"), ("long", "-200"), ("description", "d" * 4001),
                     ("email", "nope"), ("media_url", "ftp://x"), ("channel", "pigeon"), ("attribute[SIZE]", "huge")])
    req, errors = validate_new_request(p, svc, NY)
    assert req is None
    text = " | ".join(d for _, d in errors)
    for fragment in ("lat must be between", "long must be between", "description must be at most 4000",
                     "email is not a valid", "media_url", "channel must be one of", "'huge'"):
        assert fragment in text, text
    assert len(errors) == 7


def test_new_request_location_rules():
    svc = SimpleNamespace(attributes=[])
    _, errors = validate_new_request(params_from([("service_code", "X")]), svc, NY)
    assert any("a location is required" in d for _, d in errors)
    _, errors = validate_new_request(params_from([("service_code", "X"), ("lat", "39.9")]), svc, NY)
    assert any("together" in d for _, d in errors)
    req, errors = validate_new_request(params_from([("service_code", "X"), ("address_id", "A-1")]), svc, NY)
    assert errors == [] and req.address_id == "A-1"
    _, errors = validate_new_request(params_from([("service_code", "X"), ("address_string", "1 Main")]), None, NY)
    assert errors == [(404, "service_code 'X' was not found")]
    assert Open311Error(errors + [(400, "x")]).status == 404


def test_search_date_window():
    p = params_from([])
    s, errors = parse_search(p, NOW, NY, 1000)
    assert errors == [] and s.start == NOW - timedelta(days=90) and s.end is None and s.page_size == 1000
    s, errors = parse_search(params_from([("start_date", "2026-01-01T00:00:00Z"), ("end_date", "2026-04-02T00:00:00Z")]), NOW, NY, 1000)
    assert errors == [(400, "the date range may not span more than 90 days")]
    s, errors = parse_search(params_from([("start_date", "2026-01-01T00:00:00Z")]), NOW, NY, 1000)
    assert s.end == s.start + timedelta(days=90)
    s, errors = parse_search(params_from([("updated_after", "2026-11-01T00:00:00-05:00")]), NOW, NY, 1000)
    assert errors == [] and s.start is None and s.updated_after == datetime(2026, 11, 1, 5, tzinfo=UTC)
    s, errors = parse_search(params_from([("service_request_id", "3,abc,4"), ("status", "bogus")]), NOW, NY, 1000)
    assert errors == [] and s.ids == [3, 4]  # service_request_id overrides the rest
    _, errors = parse_search(params_from([("status", "pending"), ("page_size", "5000"), ("bbox", "1,2,3")]), NOW, NY, 1000)
    assert len(errors) == 3


def test_xml_rendering_escapes_and_nests():
    body = to_xml("service_requests", [{"service_request_id": "1", "description": "<b>&\x01", "lat": 1.5,
                                         "notes": [{"type": "created"}], "extended_attributes": {"channel": "web"}}])
    assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?>\n<service_requests>')
    root = ET.fromstring(body)
    req = root.find("request")
    assert req.findtext("description") == "<b>&" and req.findtext("lat") == "1.5"
    assert req.find("notes/note/type").text == "created" and req.findtext("extended_attributes/channel") == "web"


def _service(amount, unit, holidays=("2026-11-27",)):
    cal = Calendar(code="CITY", name="c", opens="08:00", closes="17:00", workdays=[0, 1, 2, 3, 4],
                   holidays=list(holidays), federal_holidays=True)
    return SimpleNamespace(calendar=cal, sla_amount=amount, sla_unit=unit)


def test_expected_time_across_weekend_and_holiday():
    # Friday 16:00 + 3 business days: skip Sat, Sun and Wednesday 11 November (Veterans Day) -> Thursday 16:00
    got = service.expected_datetime(_service(3, "business_days"), datetime(2026, 11, 6, 16, tzinfo=NY), "America/New_York")
    assert got == datetime(2026, 11, 12, 16, tzinfo=NY)
    # Wednesday before Thanksgiving 14:00 + 3 business days: Thu (federal), Fri (city holiday), weekend -> Wed 2 Dec
    got = service.expected_datetime(_service(3, "business_days"), datetime(2026, 11, 25, 14, tzinfo=NY), "America/New_York")
    assert got == datetime(2026, 12, 2, 14, tzinfo=NY)
    # Without the city's own holiday the Friday counts
    got = service.expected_datetime(_service(3, "business_days", ()), datetime(2026, 11, 25, 14, tzinfo=NY), "America/New_York")
    assert got == datetime(2026, 12, 1, 14, tzinfo=NY)
    # Calendar hours ignore the calendar
    got = service.expected_datetime(_service(8, "calendar_hours"), datetime(2026, 11, 26, 22, tzinfo=NY), "America/New_York")
    assert got == datetime(2026, 11, 27, 6, tzinfo=NY)


def test_request_ids_are_ascii_digits_only():
    assert service.request_id("42") == 42 and service.request_id("0") == 0
    for bad in ("²", "٣", "1e3", "-1", "", "9" * 18, " 7 ", "7 ", "007", "+7"):  # matched whole, as issued
        assert service.request_id(bad) is None, bad
    s, _ = parse_search(params_from([("service_request_id", "²,5")]), NOW, NY, 1000)
    assert s.ids == [5]
