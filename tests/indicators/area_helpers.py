"""What the Stat by area tests share: a city of four wards made here (squares, one with a hole, one a
MultiPolygon), requests spread over them and two departments, their 311 events carrying the
areas as intake311 sends them (on the created event only), and the app with the ward layer marked."""

import random
from datetime import UTC, datetime, timedelta

from ind_helpers import CITY, month_start
from test_indicators_derived311 import _record, _request_payload

from citystat_common.events import RequestClosed, RequestCreated, make_event
from indicators.area_maps import StaticAreaMaps
from indicators.main import create_app

LON, LAT = -75.20, 39.95  # a city's south-west corner; each ward 0.02 degrees


def _sq(i, j, size=1.0):
    x, y = LON + 0.02 * i, LAT + 0.02 * j
    s = 0.02 * size
    return [[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]


def _feature(code, name, geometry):
    return {"type": "Feature", "properties": {"code": code, "name": name, "layer": "ward", "version": 1},
            "geometry": geometry}


WARDS = {"type": "FeatureCollection", "features": [
    _feature("1", "Riverside", {"type": "Polygon", "coordinates": [_sq(0, 0)]}),
    # a park in the middle of ward 2 is not in it
    _feature("2", "Old Town", {"type": "Polygon", "coordinates": [
        _sq(1, 0), [[LON + 0.025, LAT + 0.005], [LON + 0.025, LAT + 0.015], [LON + 0.035, LAT + 0.015],
                    [LON + 0.035, LAT + 0.005], [LON + 0.025, LAT + 0.005]]]}),
    # ward 3 is a strip and an island
    _feature("3", "Harbour", {"type": "MultiPolygon", "coordinates": [[_sq(0, 1, 2.0)], [[
        [LON + 0.045, LAT + 0.025], [LON + 0.055, LAT + 0.025], [LON + 0.055, LAT + 0.035],
        [LON + 0.045, LAT + 0.035], [LON + 0.045, LAT + 0.025]]]]}),
    _feature("North & East", "North and East", {"type": "Polygon", "coordinates": [_sq(2, 0, 1.0)]}),
]}
AREAS = ["1", "2", "3", "North & East", None]  # None: the point is outside every ward
DEPTS = ["STREETS", "WATER"]


def area_settings(indicators_settings):
    return indicators_settings.model_copy(update={"stat_area_layers": ["ward"], "dashboard_refresh_seconds": 0})


def area_app(settings):
    return create_app(settings, area_maps=StaticAreaMaps({"ward": WARDS}))


def make_area_requests(seed=21, n=160):
    """Requests in month(2): each with a ward (or none), a district (a layer not marked) and a department."""
    rng = random.Random(seed)
    start = datetime.combine(month_start(2), datetime.min.time(), CITY)
    out = []
    for i in range(n):
        requested = start + timedelta(days=rng.uniform(0, 26), hours=rng.uniform(0, 23))
        sla = rng.choice([1, 3, 5])
        r = {"id": f"SR-A{i:04d}", "service": rng.choice(["POTHOLE", "LEAK"]), "dept": DEPTS[i % 2],
             "ward": AREAS[rng.randrange(len(AREAS))], "district": rng.choice(["A", "B"]),
             "requested": requested.astimezone(UTC), "expected": (requested + timedelta(days=sla)).astimezone(UTC),
             "fcr": False}
        fate = rng.random()
        r["closed"] = ((requested + timedelta(days=rng.uniform(0.1, 2 * sla))).astimezone(UTC) if fate < 0.7
                       else (requested + timedelta(days=rng.uniform(30, 40))).astimezone(UTC) if fate < 0.85 else None)
        if i % 23 == 0:
            r["duplicate_of"] = "SR-A0001"
        out.append(r)
    return out


def area_events(reqs):
    evs = []
    for r in reqs:
        own = {"department_code": r["dept"]}
        evs.append(make_event(_request_payload(r, RequestCreated, areas={"ward": r["ward"], "district": r["district"]},
                                               **own), subject=r["id"]))
        if r["closed"]:  # later events carry no areas: the created event's stand
            evs.append(make_event(_request_payload(
                r, RequestClosed, status="closed", detailed_status="closed", closed_datetime=r["closed"],
                updated_datetime=r["closed"], change="closed", **own), subject=r["id"]))
    return evs


def records(evs, first=0):
    return [_record(e, first + k) for k, e in enumerate(evs)]
