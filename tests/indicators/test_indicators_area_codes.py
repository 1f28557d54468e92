"""Stat by area's codes and settings, and the port that reads the boundaries from intake311 (issue 21),
without a database: indicator codes carry the area code's slug, LAYER:CODE is parsed as intake311
parses it, the marked layers are read from the environment, and the boundaries are cached."""

import httpx
import pytest

from citystat_common.codes import code_slug
from citystat_common.errors import Invalid
from indicators.area_maps import AreaMapUnavailable, HttpAreaMaps
from indicators.area_stat import AreaScope, area_prefix, parse_area
from indicators.config import Settings


def test_indicator_codes_carry_the_slugs_of_the_area_and_the_department():
    assert AreaScope("ward", "12").indicator_code("backlog") == "311-area.ward.12.backlog"
    assert AreaScope("ward", "12", "STREETS").indicator_code("opened") == "311-area.ward.12.STREETS.opened"
    odd = AreaScope("council_district", "North & East", "NYC H+H").indicator_code("opened")
    assert odd == f"311-area.council_district.{code_slug('North & East')}.{code_slug('NYC H+H')}.opened"
    assert code_slug("North & East") != code_slug("North - East")  # two areas never share figures
    assert odd.startswith(area_prefix("council_district", "North & East"))
    assert not AreaScope("ward", "1").indicator_code("opened").startswith(area_prefix("ward", "12"))


def test_an_area_is_layer_colon_code():
    assert parse_area("ward:12") == ("ward", "12")
    assert parse_area("district:North: East") == ("district", "North: East")  # the first colon divides
    for bad in ("ward", "ward:", ":12", ""):
        with pytest.raises(Invalid):
            parse_area(bad)


def test_the_marked_layers_come_from_the_environment_as_a_list_or_json(monkeypatch):
    monkeypatch.setenv("INDICATORS_STAT_AREA_LAYERS", "ward, council_district,ward")
    assert Settings().stat_area_layers == ["ward", "council_district"]
    monkeypatch.setenv("INDICATORS_STAT_AREA_LAYERS", '["ward"]')
    assert Settings().stat_area_layers == ["ward"]
    monkeypatch.setenv("INDICATORS_STAT_AREA_LAYERS", "Ward")
    with pytest.raises(ValueError, match="lower-case"):
        Settings()
    monkeypatch.delenv("INDICATORS_STAT_AREA_LAYERS")
    assert Settings().stat_area_layers == []


WARDS = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"code": "1", "name": "One"},
     "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}]}


async def test_the_boundaries_are_read_from_intake311_once_per_cache_period():
    asked: list[str] = []

    def intake311(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path == "/areas/ward.geojson":
            return httpx.Response(200, json=WARDS)
        if request.url.path == "/areas/broken.geojson":
            return httpx.Response(503, json={"title": "unavailable"})
        return httpx.Response(404, json={"title": "Not found"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(intake311), base_url="http://intake311")
    maps = HttpAreaMaps(client, cache_seconds=300)
    assert await maps.layer("ward") == WARDS
    assert await maps.layer("ward") == WARDS
    assert asked == ["/areas/ward.geojson"]
    assert await maps.layer("nope") is None
    with pytest.raises(AreaMapUnavailable, match="503"):
        await maps.layer("broken")
    uncached = HttpAreaMaps(client, cache_seconds=0)
    await uncached.layer("ward")
    await uncached.layer("ward")
    assert asked.count("/areas/ward.geojson") == 3
    await maps.aclose()


async def test_intake311_down_is_unavailable_not_an_error_page():
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    maps = HttpAreaMaps(httpx.AsyncClient(transport=httpx.MockTransport(down), base_url="http://x"), cache_seconds=60)
    with pytest.raises(AreaMapUnavailable, match="ConnectError"):
        await maps.layer("ward")
    await maps.aclose()
