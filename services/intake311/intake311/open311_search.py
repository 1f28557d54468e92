"""GET /requests: its parameters read into a ``Search`` (pure, unit-tested) and the query that
answers it (``search_stmt``, ``run_search``): the read side of the Open311 search."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from citystat_common.bounds import RANGE_TEXT
from citystat_common.db import utcnow
from citystat_common.uow import UnitOfWork
from intake311 import service
from intake311.areas_store import area_conditions, areas_for
from intake311.models import Department, ServiceRequest, covering_cells
from intake311.open311 import MAX_RANGE, Params, parse_bool, parse_datetime, parse_float
from intake311.open311_documents import public_request
from intake311.reads import requests_with_names

# --- GET /requests -----------------------------------------------------------------------------


@dataclass
class Search:
    ids: list[int] | None = None
    unknown_ids: bool = False
    legacy_id: str | None = None  # the previous system's number (an imported request), exactly
    service_codes: list[str] | None = None
    start: datetime | None = None
    end: datetime | None = None
    statuses: list[str] | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    agency: str | None = None
    bbox: tuple[float, float, float, float] | None = None  # min_long, min_lat, max_long, max_lat
    near: tuple[float, float, float] | None = None  # lat, long, radius in metres
    page: int = 1
    page_size: int = 1000
    extensions: bool = False
    areas: dict[str, list[str]] | None = None  # area=LAYER:CODE (intake311.areas.parse_area_filter)


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_search(params: Params, now: datetime, tz: ZoneInfo, max_results: int) -> tuple[Search, list[tuple[int, str]]]:
    errors: list[tuple[int, str]] = []
    s = Search(page_size=max_results)
    try:
        s.extensions = bool(parse_bool(params.get("extensions")))
    except ValueError:
        errors.append((400, "extensions must be true or false"))
    for name in ("page", "page_size"):
        v = params.get(name)
        if v is None:
            continue
        try:
            n = int(v)
        except ValueError:
            errors.append((400, f"{name} must be a whole number"))
            continue
        upper = 1_000_000 if name == "page" else max_results
        if not 1 <= n <= upper:
            errors.append((400, f"{name} must be between 1 and {upper}"))
        else:
            setattr(s, name, n)
    ids = params.get("service_request_id")
    if ids is not None:
        # The spec: service_request_id overrides every other parameter.
        parsed = []
        for part in _csv(ids):
            if part.isascii() and part.isdigit() and len(part) < 18:
                parsed.append(int(part))
            else:
                s.unknown_ids = True
        s.ids = parsed
        return s, errors
    legacy = params.get("legacy_id")
    if legacy is not None:
        # an extension, like service_request_id: one number, as the previous system wrote it; it
        # overrides every other parameter
        if not legacy or len(legacy) > 100:
            errors.append((400, "legacy_id must be 1-100 characters"))
        s.legacy_id = legacy
        return s, errors
    codes = params.get("service_code")
    if codes is not None:
        s.service_codes = _csv(codes)
    status = params.get("status")
    if status is not None:
        s.statuses = [x.lower() for x in _csv(status)]
        bad = [x for x in s.statuses if x not in ("open", "closed")]
        if bad or not s.statuses:
            errors.append((400, "status must be open, closed, or open,closed"))
    times: dict[str, datetime] = {}
    for name in ("start_date", "end_date", "updated_after", "updated_before"):
        v = params.get(name)
        if v is None:
            continue
        try:
            times[name] = parse_datetime(v, tz)
        except ValueError:
            errors.append((400, f"{name} must be an ISO 8601 date and time {RANGE_TEXT}, e.g. 2026-11-01T00:00:00Z"))
    s.updated_after, s.updated_before = times.get("updated_after"), times.get("updated_before")
    start, end = times.get("start_date"), times.get("end_date")
    if start and end:
        if end < start:
            errors.append((400, "end_date must not be before start_date"))
        elif end - start > MAX_RANGE:
            errors.append((400, "the date range may not span more than 90 days"))
    elif start:
        end = start + MAX_RANGE
    elif end:
        start = end - MAX_RANGE
    elif not ("start_date" in params.values or "end_date" in params.values) and (s.updated_after or s.updated_before):
        pass  # incremental sync by update time: no requested-date window
    else:
        start, end = now - MAX_RANGE, None
    s.start, s.end = start, end
    agency = params.get("agency_responsible")
    if agency is not None:
        s.agency = agency
    bbox = params.get("bbox")
    if bbox is not None:
        try:
            parts = [parse_float(x) for x in bbox.split(",")]
            if len(parts) != 4:
                raise ValueError
            min_long, min_lat, max_long, max_lat = parts
            if not (-180 <= min_long <= max_long <= 180 and -90 <= min_lat <= max_lat <= 90):
                raise ValueError
            s.bbox = (min_long, min_lat, max_long, max_lat)
        except ValueError:
            errors.append((400, "bbox must be min_long,min_lat,max_long,max_lat in WGS84 degrees"))
    lat, lng, radius = params.get("lat"), params.get("long"), params.get("radius")
    if lat is not None or lng is not None or radius is not None:
        try:
            la, lo = parse_float(lat or ""), parse_float(lng or "")
            r = parse_float(radius) if radius is not None else 500.0
            if not (-90 <= la <= 90 and -180 <= lo <= 180 and 0 < r <= 50_000):
                raise ValueError
            s.near = (la, lo, r)
        except ValueError:
            errors.append((400, "lat, long and radius (metres, up to 50000) must be valid together"))
    return s, errors


def search_stmt(s: Search, now: datetime) -> sa.Select:  # type: ignore[type-arg]
    import math

    R = ServiceRequest
    stmt = (
        requests_with_names()
        .where(R.pending.is_(False))
    )
    if s.ids is not None:
        return stmt.where(R.id.in_(s.ids or [-1])).order_by(R.id)
    if s.legacy_id is not None:
        return stmt.where(R.legacy_id == s.legacy_id).order_by(R.id)
    conds: list[Any] = []  # the filters on service_requests alone: also those of the per-cell queries below
    if s.service_codes is not None:
        conds.append(R.service_code.in_(s.service_codes or [""]))
    if s.start is not None:
        conds.append(R.requested_datetime >= s.start)
    if s.end is not None:
        conds.append(R.requested_datetime <= s.end)
    if s.statuses:
        conds.append(R.status.in_(s.statuses))
    if s.updated_after is not None:
        conds.append(R.updated_datetime > s.updated_after)
    if s.updated_before is not None:
        conds.append(R.updated_datetime <= s.updated_before)
    cells: set[int] | None = None  # covering every area given; None: no area, or a large one

    def also_in(more: list[int] | None) -> set[int] | None:
        # bbox and lat/long/radius together: either cell list covers their intersection
        return cells if more is None else set(more) if cells is None else cells & set(more)

    if s.bbox:
        min_long, min_lat, max_long, max_lat = s.bbox
        conds += [R.lat.between(min_lat, max_lat), R.long.between(min_long, max_long)]
        cells = also_in(covering_cells(min_lat, max_lat, min_long, max_long))
    if s.near:
        lat, lon, radius = s.near
        kx = 111_320.0 * math.cos(math.radians(lat))
        ky = 110_574.0
        dlat, dlon = radius / ky, radius / max(1.0, kx)
        conds += [
            R.lat.between(lat - dlat, lat + dlat), R.long.between(lon - dlon, lon + dlon),
            ((R.lat - lat) * ky) * ((R.lat - lat) * ky) + ((R.long - lon) * kx) * ((R.long - lon) * kx) <= radius * radius,
        ]
        cells = also_in(covering_cells(lat - dlat, lat + dlat, lon - dlon, lon + dlon))
    if s.areas:  # issue 21: area=LAYER:CODE, through request_areas (layer, code, request_id)
        conds += area_conditions(s.areas)
    if s.agency:
        # without the join (departments.code is unique), so the per-cell queries below can use it too
        conds.append(sa.or_(R.department_code == s.agency, R.department_code.in_(
            sa.select(Department.code).where(sa.func.lower(Department.name) == s.agency.lower()))))
    stmt = stmt.where(*conds)
    if (s.updated_after or s.updated_before) and s.start is None and s.end is None:
        return stmt.order_by(R.updated_datetime, R.id)  # incremental sync: stable, oldest change first
    order = (R.requested_datetime.desc(), R.id.desc())
    wanted = s.page * s.page_size
    if cells is not None and not cells:
        return stmt.where(sa.false()).order_by(*order)  # the bbox and the circle do not meet
    if cells is not None and wanted <= 1_000:  # deeper pages read the area through the plain predicates
        # Area search: the newest `wanted` matches of each covering cell through the index on (cell,
        # requested_datetime, id, ...), merged; the page is the newest `wanted` of those. Reads
        # about `wanted` rows whatever the table size, where one index range over the area would
        # read (and sort) every match in it. Built per request: Core columns, one shared WHERE and
        # columns named as text, because SQLAlchemy's column collections of a many-armed union
        # cost about a millisecond.
        t, m = R.__table__.c, sa.literal_column
        where = sa.and_(R.pending.is_(False), *conds)
        per_cell: list[Any] = [sa.select(m("*")).select_from(
                        sa.select(t.id, t.requested_datetime).where(t.cell == c, where)
                        .order_by(t.requested_datetime.desc(), t.id.desc()).limit(wanted).subquery())
                    for c in sorted(cells)]
        merged = sa.union_all(*per_cell).subquery("merged") if len(per_cell) > 1 else per_cell[0].subquery("merged")
        newest: Any = (sa.select(m("merged.id")).select_from(merged)
                  .order_by(m("merged.requested_datetime").desc(), m("merged.id").desc()).limit(wanted))
        stmt = stmt.where(R.id.in_(newest))
    elif cells is not None:
        stmt = stmt.where(R.cell.in_(sorted(cells)))
    return stmt.order_by(*order)


async def run_search(uow: UnitOfWork, s: Search, tz: ZoneInfo) -> list[dict[str, Any]]:
    stmt = search_stmt(s, utcnow()).offset((s.page - 1) * s.page_size).limit(s.page_size)
    rows = (await uow.session.execute(stmt)).all()
    notes = await service.notes_for(uow, [r[0].id for r in rows]) if s.extensions else {}
    tagged = await areas_for(uow, [r[0].id for r in rows]) if s.extensions else {}
    return [public_request(r, name, agency, tz, notes.get(r.id), s.extensions, tagged.get(r.id))
            for r, name, agency in rows]
