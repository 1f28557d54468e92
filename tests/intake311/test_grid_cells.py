"""The spatial grid behind area searches: grid_cell / covering_cells (pure), the column filled on
insert, the 0004 backfill, and area searches (bbox, lat/long/radius) returning exactly what the
plain lat/long predicates return, on SQLite and PostgreSQL."""

import dataclasses
import math
import random
from datetime import timedelta

import sqlalchemy as sa
from hypothesis import example, given, settings
from hypothesis import strategies as st
from intake311_helpers import intake_deps, query_rows

from citystat_common.db import create_engine, utcnow
from citystat_common.migrate import upgrade
from citystat_common.testing import empty_database
from intake311 import models, service
from intake311.models import CELL_DEG, CELL_ROW, ServiceRequest, covering_cells, grid_cell
from intake311.open311_search import Search, search_stmt

# --- pure functions ------------------------------------------------------------------------------


def test_grid_cell_values():
    assert grid_cell(None, 1.0) is None and grid_cell(1.0, None) is None and grid_cell(None, None) is None
    assert grid_cell(math.nan, 0.0) is None and grid_cell(0.0, math.inf) is None
    assert grid_cell(-90.0, -180.0) == 0
    rows, cols = round(180 / CELL_DEG), round(360 / CELL_DEG)
    assert cols < CELL_ROW
    assert grid_cell(90.0, 180.0) == rows * CELL_ROW + cols
    assert grid_cell(0.0, 0.0) == rows // 2 * CELL_ROW + cols // 2
    assert grid_cell(0.0, -0.001) == rows // 2 * CELL_ROW + cols // 2 - 1
    assert grid_cell(-0.001, 0.0) == (rows // 2 - 1) * CELL_ROW + cols // 2
    # out of range is clamped (never stored through the API; keeps the function total and monotonic)
    assert grid_cell(95.0, -200.0) == grid_cell(90.0, -180.0)
    # Philadelphia City Hall and a point 100 m north share a cell or are neighbours
    a, b = grid_cell(39.9526, -75.1652), grid_cell(39.9535, -75.1652)
    assert a is not None and b is not None and b - a in (0, CELL_ROW)


def test_covering_cells_shape_and_cap():
    cells = covering_cells(39.948, 39.957, -75.172, -75.160)
    n_rows = math.floor((39.957 + 90) / CELL_DEG) - math.floor((39.948 + 90) / CELL_DEG) + 1
    n_cols = math.floor((-75.160 + 180) / CELL_DEG) - math.floor((-75.172 + 180) / CELL_DEG) + 1
    assert cells is not None and len(cells) == len(set(cells)) == n_rows * n_cols
    assert set(cells) == {grid_cell(la, lo) for la in (39.948, 39.95, 39.957) for lo in (-75.172, -75.165, -75.16)} | set(cells)
    assert covering_cells(39.95, 39.95, -75.16, -75.16) == [grid_cell(39.95, -75.16)]
    assert covering_cells(39.0, 41.0, -76.0, -74.0) is None  # a whole region: plain predicates
    assert covering_cells(39.0, 41.0, -76.0, -74.0, max_cells=10**7) is not None


coord_lat = st.floats(-90, 90, allow_nan=False)
coord_long = st.floats(-180, 180, allow_nan=False)
extent = st.floats(0, 40 * CELL_DEG, allow_nan=False)


@settings(max_examples=500, deadline=None)
@given(coord_lat, coord_long, extent, extent, st.data())
@example(-90.0, -180.0, 0.0, 0.0, None)
@example(89.999, 179.999, 0.01, 0.01, None)
@example(-0.0025, -0.0025, 0.0025, 0.0025, None)
def test_every_point_in_a_box_is_in_a_covering_cell(lat, long, dlat, dlong, data):
    min_lat, max_lat = lat, min(90.0, lat + dlat)
    min_long, max_long = long, min(180.0, long + dlong)
    cells = set(covering_cells(min_lat, max_lat, min_long, max_long, max_cells=10**6) or ())
    assert cells
    points = [(min_lat, min_long), (min_lat, max_long), (max_lat, min_long), (max_lat, max_long)]
    if data is not None:
        points += data.draw(st.lists(st.tuples(st.floats(min_lat, max_lat), st.floats(min_long, max_long)), max_size=20))
    # points exactly on the cell lines inside the box
    for k in range(math.floor((min_lat + 90) / CELL_DEG), math.floor((max_lat + 90) / CELL_DEG) + 2):
        edge = k * CELL_DEG - 90
        if min_lat <= edge <= max_lat:
            points.append((edge, min_long))
    for p_lat, p_long in points:
        assert grid_cell(p_lat, p_long) in cells, (p_lat, p_long)


@settings(max_examples=300, deadline=None)
@given(coord_lat, coord_long, st.floats(1, 2_000), st.floats(0, 2 * math.pi), st.floats(0, 1))
def test_every_point_in_a_radius_is_in_a_covering_cell(lat, long, radius, angle, fraction):
    # the bounds search_stmt uses for lat/long/radius, and a point inside the circle
    kx, ky = 111_320.0 * math.cos(math.radians(lat)), 110_574.0
    dlat, dlong = radius / ky, radius / max(1.0, kx)
    p_lat = lat + math.sin(angle) * fraction * dlat
    p_long = long + math.cos(angle) * fraction * dlong
    if not (-90 <= p_lat <= 90 and -180 <= p_long <= 180 and lat - dlat <= p_lat <= lat + dlat
            and long - dlong <= p_long <= long + dlong):
        return
    cells = covering_cells(lat - dlat, lat + dlat, long - dlong, long + dlong, max_cells=10**7)
    assert cells is not None and grid_cell(p_lat, p_long) in cells


# --- the column, the backfill and the searches --------------------------------------------------

EDGE_POINTS = [
    (-90.0, -180.0), (90.0, 180.0), (0.0, 0.0), (-0.0025, -0.0025), (-33.8688, 151.2093), (39.95, -75.165),
    (39.9525, -75.1650), (64.1466, -21.9426), (-54.8019, -68.3030), (12.5, -0.0000001),
]


async def test_migration_backfills_cells(db_kind, tmp_path):
    url = empty_database(db_kind, tmp_path)
    upgrade("intake311", url, "0003")
    rng = random.Random(4)
    points = EDGE_POINTS + [(rng.uniform(-90, 90), rng.uniform(-180, 180)) for _ in range(300)] + [(None, None)]
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for i, (lat, long) in enumerate(points):
                await conn.execute(sa.text(
                    "INSERT INTO service_requests (pending, service_code, department_code, channel, status, "
                    "detailed_status, first_contact_resolution, lat, long, attributes, requested_datetime, "
                    "updated_datetime, created_by) VALUES (:f, 'POTHOLE', 'STREETS', 'web', 'open', 'open', :f, "
                    ":lat, :long, '{}', :t, :t, 'test')"),
                    {"f": False, "lat": lat, "long": long, "t": utcnow() - timedelta(minutes=i)})
    finally:
        await engine.dispose()
    upgrade("intake311", url)
    rows = await query_rows(url, "SELECT lat, long, cell FROM service_requests")
    assert len(rows) == len(points)
    for lat, long, cell in rows:
        assert cell == grid_cell(lat, long), (lat, long, cell)


def _row(i: int, lat: float | None, long: float | None, now, rng: random.Random) -> dict:
    return dict(pending=False, service_code=rng.choice(["POTHOLE", "GRAFFITI"]), department_code="STREETS",
                channel="web", status=rng.choice(["open", "closed"]), detailed_status="open",
                first_contact_resolution=False, description=f"row {i}", lat=lat, long=long, attributes={},
                requested_datetime=now - timedelta(hours=rng.uniform(0, 24 * 100)), updated_datetime=now,
                created_by="test")


async def _seed(uow_factory) -> list[sa.Row]:
    """Rows around the grid lines of two places (west and south of Greenwich too), some without a
    position; half through the ORM (attribute validator), half through Core (column default)."""
    rng = random.Random(11)
    now = utcnow()
    points: list[tuple[float | None, float | None]] = list(EDGE_POINTS)
    for c_lat, c_long in ((39.9526, -75.1652), (-0.001, -0.001)):
        points += [(c_lat + rng.uniform(-0.012, 0.012), c_long + rng.uniform(-0.015, 0.015)) for _ in range(220)]
        # exactly on cell lines
        base_lat = math.floor((c_lat + 90) / CELL_DEG) * CELL_DEG - 90
        base_long = math.floor((c_long + 180) / CELL_DEG) * CELL_DEG - 180
        points += [(base_lat + k * CELL_DEG, base_long + j * CELL_DEG) for k in range(-2, 3) for j in range(-2, 3)]
    points += [(None, None)] * 5
    rows = [_row(i, lat, long, now, rng) for i, (lat, long) in enumerate(points)]
    async with uow_factory() as uow:
        uow.session.add_all(ServiceRequest(**r) for r in rows[::2])
        await uow.session.execute(sa.insert(ServiceRequest), rows[1::2])
        await uow.commit()
    R = ServiceRequest
    async with uow_factory() as uow:
        return list((await uow.session.execute(sa.select(R.id, R.lat, R.long, R.cell, R.status, R.requested_datetime))).all())


def _near_match(r: sa.Row, lat: float, lon: float, radius: float) -> bool:
    # search_stmt's predicates, evaluated the same way (IEEE doubles, same order of operations)
    kx, ky = 111_320.0 * math.cos(math.radians(lat)), 110_574.0
    dlat, dlon = radius / ky, radius / max(1.0, kx)
    if r.lat is None or r.long is None:
        return False
    return (lat - dlat <= r.lat <= lat + dlat and lon - dlon <= r.long <= lon + dlon
            and ((r.lat - lat) * ky) * ((r.lat - lat) * ky) + ((r.long - lon) * kx) * ((r.long - lon) * kx) <= radius * radius)


async def _search(uow_factory, s: Search, paged: bool = False) -> list[int]:
    stmt = search_stmt(s, utcnow())
    # paged: as run_search reads a page; else everything
    stmt = stmt.offset((s.page - 1) * s.page_size).limit(s.page_size) if paged else stmt.limit(10_000)
    async with uow_factory() as uow:
        return [r[0].id for r in (await uow.session.execute(stmt)).all()]


async def test_area_searches_match_brute_force_and_plain_predicates(uow_factory, monkeypatch):
    rows = await _seed(uow_factory)
    assert all(r.cell == grid_cell(r.lat, r.long) for r in rows)
    now = utcnow()
    start = now - timedelta(days=90)
    in_window = {r.id: r for r in rows if r.requested_datetime.replace(tzinfo=None) >= start.replace(tzinfo=None)}
    rng = random.Random(7)
    searches: list[tuple[Search, set[int]]] = []
    for c_lat, c_long in ((39.9526, -75.1652), (-0.001, -0.001)):
        for _ in range(12):
            lat, lon = c_lat + rng.uniform(-0.01, 0.01), c_long + rng.uniform(-0.012, 0.012)
            # boxes whose edges sit on stored points and on cell lines, and random ones
            pts = [r for r in in_window.values() if r.lat is not None and abs(r.lat - c_lat) < 0.02]
            a, b = rng.sample(pts, 2)
            for min_lat, max_lat, min_long, max_long in (
                (min(a.lat, b.lat), max(a.lat, b.lat), min(a.long, b.long), max(a.long, b.long)),
                (lat, lat + rng.uniform(0, 0.01), lon, lon + rng.uniform(0, 0.012)),
            ):
                for statuses in (None, ["open"]):
                    want = {i for i, r in in_window.items() if r.lat is not None and min_lat <= r.lat <= max_lat
                            and min_long <= r.long <= max_long and (statuses is None or r.status in statuses)}
                    searches.append((Search(start=start, statuses=statuses,
                                            bbox=(min_long, min_lat, max_long, max_lat)), want))
            radius = rng.choice([30.0, 120.0, 300.0, 800.0])
            want = {i for i, r in in_window.items() if _near_match(r, lat, lon, radius)}
            searches.append((Search(start=start, near=(lat, lon, radius)), want))
    searches.append((Search(start=start, near=(39.9526, -75.1652, 5_000)), {
        i for i, r in in_window.items() if _near_match(r, 39.9526, -75.1652, 5_000)}))  # over the cap
    pages = [dataclasses.replace(s, page=p, page_size=n) for s, _ in searches[::5] for p, n in ((1, 4), (2, 4), (3, 4), (2, 600))]
    merged = sum("UNION ALL" in str(search_stmt(s, now)) for s, _ in searches)
    assert 10 < merged < len(searches)  # both the per-cell path and the plain one (large areas) ran
    with_cells = [await _search(uow_factory, s) for s, _ in searches]
    paged = [await _search(uow_factory, s, paged=True) for s in pages]
    monkeypatch.setattr(models, "covering_cells", lambda *a, **k: None)
    plain = [await _search(uow_factory, s) for s, _ in searches]
    assert paged == [await _search(uow_factory, s, paged=True) for s in pages]
    assert sum(len(w) for _, w in searches) > 500
    for (s, want), got, before in zip(searches, with_cells, plain, strict=True):
        assert got == before, s  # same rows, same order as without the grid
        assert set(got) == want, s


async def test_duplicate_detection_across_cell_lines(uow_factory):
    # two reports 20 m apart on either side of a cell line are still linked
    edge = math.floor((39.9526 + 90) / CELL_DEG) * CELL_DEG - 90
    async with uow_factory() as uow:
        pothole = await service.get_service(uow, "POTHOLE")
        from intake311.open311 import NewRequest

        first = await service.create_request(
            uow, data=NewRequest(service_code="POTHOLE", lat=edge - 0.00009, long=-75.1652, attributes={"SIZE": "large"}),
            service=pothole, channel="web", author="t", deps=intake_deps(radius_m=50, window_hours=72))
        second = await service.create_request(
            uow, data=NewRequest(service_code="POTHOLE", lat=edge + 0.00009, long=-75.1652, attributes={"SIZE": "large"}),
            service=pothole, channel="web", author="t", deps=intake_deps(radius_m=50, window_hours=72))
        assert first.cell != second.cell and first.cell == grid_cell(first.lat, first.long)
        assert second.duplicate_of == first.id
        await uow.commit()
