"""Stat by area from end to end, on SQLite and PostgreSQL (issue 21, "Done when"): a ward layer made
here (squares, a ward with a hole, a ward that is a strip and an island) is loaded into intake311,
requests are posted through Open311 at points in each ward (one in the hole), the events intake311
wrote to its outbox are consumed by the indicators service, and each ward's figures count the
requests posted in it; the ward's dashboard draws the map from intake311's own GeoJSON answer."""

import re
from html import unescape

import httpx
import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord
from area_helpers import WARDS
from ind_helpers import month, preload_departments
from intake311_helpers import demo_catalog_database, post
from test_indicators_area_stat import _runner, _values

from citystat_common.codes import code_slug
from citystat_common.db import create_engine
from citystat_common.testing import TEST_KEY_ENTRIES, app_client, auth
from indicators.area_maps import HttpAreaMaps
from indicators.main import create_app
from intake311.config import Settings as Intake311Settings
from intake311.main import create_app as create_intake311

# (lat, long) -> the ward intake311 should find (None: in ward 2's hole, in no ward)
POINTS = [((39.960, -75.190), "1"), ((39.955, -75.195), "1"), ((39.965, -75.185), "1"),
          ((39.952, -75.170), "2"), ((39.968, -75.162), "2"), ((39.960, -75.170), None),
          ((39.980, -75.150), "3"), ((39.990, -75.190), "3"), ((39.960, -75.150), "North & East")]


@pytest.fixture
async def intake311(db_kind, tmp_path):
    settings = Intake311Settings(database_url=demo_catalog_database(db_kind, tmp_path), api_keys=TEST_KEY_ENTRIES,
                                 kafka_bootstrap="127.0.0.1:9", directory_url="http://127.0.0.1:9",
                                 directory_timeout=1.0)
    app = create_intake311(settings)
    async with app_client(app) as client:
        yield app, client, settings


async def _outbox(settings) -> list[tuple[str, bytes]]:
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT key, payload FROM outbox ORDER BY id"))).all()
    finally:
        await engine.dispose()
    return [(k, bytes(p)) for k, p in rows]


async def test_requests_posted_in_wards_give_each_ward_its_figures_and_map(intake311, indicators_settings):
    intake_app, intake, intake_settings = intake311
    r = await intake.post("/admin/areas/ward", headers=auth("admin"),
                          json={"code_property": "code", "name_property": "name", "features": WARDS})
    assert r.status_code == 201, r.text
    for (lat, long), _ in POINTS:
        r = await post(intake, {"service_code": "POTHOLE", "lat": str(lat), "long": str(long), "attribute[SIZE]": "large"})
        assert r.status_code == 201, r.text
    raw = await _outbox(intake_settings)
    assert len(raw) == len(POINTS)

    maps = HttpAreaMaps(httpx.AsyncClient(transport=httpx.ASGITransport(app=intake_app), base_url="http://intake311"),
                        cache_seconds=60)
    settings = indicators_settings.model_copy(update={"stat_area_layers": ["ward"], "dashboard_refresh_seconds": 0})
    app = create_app(settings, area_maps=maps)
    async with app_client(app) as client:
        await preload_departments(app)
        runner = _runner(app, batched=True)
        records = [ConsumerRecord("311.requests", 0, k, 0, 0, key.encode(), payload, None, 0, len(payload), [])
                   for k, (key, payload) in enumerate(raw)]
        assert set(await runner.process_batch(records)) == {"processed"}

        for ward in ("1", "2", "3", "North & East"):
            want = sum(1 for _, w in POINTS if w == ward)
            for code in (f"311-area.ward.{code_slug(ward)}.opened", f"311-area.ward.{code_slug(ward)}.STREETS.backlog"):
                assert (await _values(client, code))[month(0)]["value"] == want, code
        inds = (await client.get("/indicators", params={"page_size": 500})).json()["items"]
        assert len([i for i in inds if i["code"].startswith("311-area.")]) == 4 * 2 * 4  # none for the hole
        assert (await _values(client, "311.STREETS.opened"))[month(0)]["value"] == len(POINTS)

        page = (await client.get("/dashboard", params={"area": "ward:3"})).text
        assert "<h1>Ward Harbour (3)</h1>" in page
        svg = re.search(r'<figure id="area-map">(.*?)</figure>', page, re.S).group(1)
        assert svg.count("<path ") == 4 and re.search(r'stroke-width="5" data-code="3"', svg)
        assert sorted(unescape(c) for c in re.findall(r'<tr data-code="([^"]+)"', page)) == ["1", "2", "3", "North & East"]
    await maps.aclose()
