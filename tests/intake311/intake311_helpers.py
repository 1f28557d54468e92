"""Shared test helpers: posting requests, reading Open311 XML (our own output, parsed with the
standard library, which expands no external entities)."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from citystat_common.migrate import _run_coroutine
from citystat_common.testing import TEST_KEYS, seeded_database
from intake311.config import Settings
from intake311.demo_catalog import load_demo_catalog
from intake311.deps import Deps

SERVICE_FIELDS = ["service_code", "service_name", "description", "metadata", "type", "keywords", "group"]
REQUEST_FIELDS = [
    "service_request_id", "status", "status_notes", "service_name", "service_code", "description",
    "agency_responsible", "service_notice", "requested_datetime", "updated_datetime", "expected_datetime",
    "address", "address_id", "zipcode", "lat", "long", "media_url",
]
ATTRIBUTE_FIELDS = ["variable", "code", "datatype", "required", "datatype_description", "order", "description"]
XML_DECL = b'<?xml version="1.0" encoding="utf-8"?>'

def demo_catalog_database(kind: str, tmp_path) -> str:
    """A migrated intake311 database holding the demo city's catalog (19 services, 8 departments):
    migrations seed no catalog since 0021, and most tests post to POTHOLE and its neighbours. The
    catalog is imported once per run and database kind; each test gets its own copy."""
    urls: list[str] = []

    async def make() -> None:
        urls.append(await seeded_database(kind, "intake311", tmp_path, "demo-catalog", load_demo_catalog))

    _run_coroutine(make())
    return urls[0]


def intake_deps(*, radius_m: float = 50, window_hours: float = 72, timezone: str = "America/New_York") -> Deps:
    """What the domain functions are given outside the app: the city's timezone and the
    duplicate-detection radius and window under test."""
    return Deps(Settings(city_timezone=timezone, duplicate_radius_m=radius_m, duplicate_window_hours=window_hours))


POTHOLE = {"service_code": "POTHOLE", "lat": "39.9526", "long": "-75.1652", "attribute[SIZE]": "large"}


def xml(response) -> ET.Element:
    assert response.headers["content-type"] == "text/xml; charset=utf-8", response.headers["content-type"]
    assert response.content.startswith(XML_DECL), response.content[:80]
    return ET.fromstring(response.content)


def tags(el: ET.Element) -> list[str]:
    return [c.tag for c in el]


def assert_error_doc(response, status: int, fmt: str, *, contains: str | None = None, count: int | None = None) -> list[dict]:
    assert response.status_code == status, response.text
    if fmt == "xml":
        root = xml(response)
        assert root.tag == "errors"
        errors = []
        for e in root:
            assert e.tag == "error" and tags(e) == ["code", "description"], ET.tostring(e)
            errors.append({"code": int(e.findtext("code")), "description": e.findtext("description")})
    else:
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        errors = response.json()
        assert isinstance(errors, list)
        for e in errors:
            assert set(e) == {"code", "description"} and isinstance(e["code"], int)
    assert errors, "an error document has at least one error"
    if contains is not None:
        assert any(contains in e["description"] for e in errors), errors
    if count is not None:
        assert len(errors) == count, errors
    return errors


async def post(client, fields: dict | list, role: str = "call_center", fmt: str = "json", **kw):
    return await client.post(f"/requests.{fmt}", params={"api_key": TEST_KEYS[role]}, data=fields, **kw)


async def create(client, fields: dict | list | None = None, role: str = "call_center") -> str:
    return (await create_with_token(client, fields, role))[0]


async def create_with_token(client, fields: dict | list | None = None, role: str = "call_center") -> tuple[str, str]:
    """A new request's id and the feedback token its POST returned to the reporter."""
    r = await post(client, fields or POTHOLE, role)
    assert r.status_code == 201, r.text
    return r.json()[0]["service_request_id"], r.json()[0]["feedback_token"]


async def query_rows(url: str, sql: str) -> list:
    """Every row of ``sql`` on the database at ``url`` (a test reading what was stored)."""
    import sqlalchemy as sa

    from citystat_common.db import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(sa.text(sql))).all())
    finally:
        await engine.dispose()
