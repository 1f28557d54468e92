"""Duplicate detection: a new request of a service is linked to an open one reported before it
(nearest within the radius and window, or the same normalised address), by a policy per service.

The policy lives in the catalog (``services.duplicate_policy``, schemas.DuplicatePolicy): on or off,
radius and window, each defaulting to the service-wide settings. Questions are not problems at a
place: two residents asking the same thing at City Hall are two requests, so the seeded
INFORMATION service has linking off (closing one answer had closed the others). A report without a
position is matched on its normalised address only, never by location.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from citystat_common.db import sqlite_fetch_all, sqlite_time
from citystat_common.uow import UnitOfWork
from intake311.models import covering_cells
from intake311.open311 import NewRequest, box_around, haversine_m

if TYPE_CHECKING:
    from intake311.service import RequestDraft

Candidate = tuple[int, float | None, float | None]  # id, lat, long

_SUFFIXES = {"street": "st", "avenue": "ave", "road": "rd", "boulevard": "blvd", "drive": "dr", "lane": "ln",
             "place": "pl", "court": "ct", "north": "n", "south": "s", "east": "e", "west": "w"}
_PUNCTUATION = re.compile(r"[^\w\s]")


def address_key(text: str | None) -> str | None:
    """An address as compared: case, punctuation, spacing and the usual abbreviations do not count
    ("1400 John F. Kennedy Boulevard" is "1400 john f kennedy blvd"). Migration 0007 has a frozen copy."""
    if not text:
        return None
    words = _PUNCTUATION.sub(" ", text.casefold()).split()
    return " ".join(_SUFFIXES.get(w, w) for w in words)[:500] or None


def request_address_key(data: NewRequest) -> str | None:
    return address_key(data.address_id or data.address_string)


def policy(raw: Mapping[str, Any] | None, *, radius_m: float, window_hours: float) -> tuple[float, float]:
    """(radius in metres, window in hours) of a service's policy; (0, 0) when linking is off."""
    if raw is None:
        return radius_m, window_hours
    if not raw.get("enabled", True):
        return 0.0, 0.0
    radius, window = raw.get("radius_m"), raw.get("window_hours")
    return (radius_m if radius is None else float(radius)), (window_hours if window is None else float(window))


# PostgreSQL: every draft's duplicate candidates in one statement of fixed text (prepared once):
# the duplicate predicates (open, same service, not pending, not itself a duplicate, in the window), per (draft, grid cell) through lateral joins over arrays. No ORDER BY
# ... LIMIT inside (it would tempt the planner to walk a time index instead of the cell one); a
# 50 m circle holds few open requests, and Python keeps the first 50 in time order.
_PG_CANDIDATES = sa.text("""
SELECT q.i, r.id, r.lat, r.long, r.requested_datetime
FROM unnest(CAST(:draft AS INTEGER[]), CAST(:codes AS VARCHAR[]), CAST(:cells AS BIGINT[]),
            CAST(:min_lat AS FLOAT8[]), CAST(:max_lat AS FLOAT8[]), CAST(:min_long AS FLOAT8[]),
            CAST(:max_long AS FLOAT8[]), CAST(:address_keys AS VARCHAR[]), CAST(:since AS TIMESTAMPTZ[]))
     AS q(i, code, cell, min_lat, max_lat, min_long, max_long, address_key, since)
CROSS JOIN LATERAL (
  (SELECT s.id, s.lat, s.long, s.requested_datetime FROM service_requests s
   WHERE q.cell IS NOT NULL AND s.cell = q.cell AND s.status = 'open' AND s.requested_datetime >= q.since
     AND s.lat BETWEEN q.min_lat AND q.max_lat AND s.long BETWEEN q.min_long AND q.max_long
     AND s.service_code = q.code AND NOT s.pending AND s.duplicate_of IS NULL LIMIT 2000)
  UNION ALL
  (SELECT s.id, s.lat, s.long, s.requested_datetime FROM service_requests s
   WHERE q.cell IS NULL AND q.min_lat IS NOT NULL
     AND s.lat BETWEEN q.min_lat AND q.max_lat AND s.long BETWEEN q.min_long AND q.max_long
     AND s.service_code = q.code AND s.status = 'open' AND NOT s.pending AND s.duplicate_of IS NULL
     AND s.requested_datetime >= q.since LIMIT 2000)
  UNION ALL
  (SELECT s.id, s.lat, s.long, s.requested_datetime FROM service_requests s
   WHERE q.min_lat IS NULL AND s.address_key = q.address_key
     AND s.service_code = q.code AND s.status = 'open' AND NOT s.pending AND s.duplicate_of IS NULL
     AND s.requested_datetime >= q.since LIMIT 2000)
) r
""")  # the arrays are bound as they are: asyncpg encodes lists by the CASTs' types

# SQLite: the same predicates, every draft's lookups in one statement of fixed text (one JSON array
# of [draft, code, cell, min_lat, max_lat, min_long, max_long, address_key, since] rows). A query
# per draft cost a statement built by the ORM and a hop to the driver's thread and back each: a
# quarter of the api's CPU on SQLite. The plan probes ix_service_requests_cell per (draft, cell),
# and ix_service_requests_open_nearby for the two other shapes.
_SQLITE_CANDIDATES = sa.text("""
WITH q AS (
  SELECT json_extract(value, '$[0]') AS i, json_extract(value, '$[1]') AS code, json_extract(value, '$[2]') AS cell,
         json_extract(value, '$[3]') AS min_lat, json_extract(value, '$[4]') AS max_lat,
         json_extract(value, '$[5]') AS min_long, json_extract(value, '$[6]') AS max_long,
         json_extract(value, '$[7]') AS address_key, json_extract(value, '$[8]') AS since
  FROM json_each(:lookups))
SELECT q.i, s.id, s.lat, s.long, s.requested_datetime FROM q CROSS JOIN service_requests s
WHERE q.cell IS NOT NULL AND s.cell = q.cell AND s.requested_datetime >= q.since AND s.status = 'open'
  AND s.lat BETWEEN q.min_lat AND q.max_lat AND s.long BETWEEN q.min_long AND q.max_long
  AND s.service_code = q.code AND s.pending = 0 AND s.duplicate_of IS NULL
UNION ALL
SELECT q.i, s.id, s.lat, s.long, s.requested_datetime FROM q CROSS JOIN service_requests s
WHERE q.cell IS NULL AND q.min_lat IS NOT NULL AND s.service_code = q.code AND s.status = 'open'
  AND s.requested_datetime >= q.since AND s.lat BETWEEN q.min_lat AND q.max_lat
  AND s.long BETWEEN q.min_long AND q.max_long AND s.pending = 0 AND s.duplicate_of IS NULL
UNION ALL
SELECT q.i, s.id, s.lat, s.long, s.requested_datetime FROM q CROSS JOIN service_requests s
WHERE q.min_lat IS NULL AND s.address_key = q.address_key AND s.service_code = q.code AND s.status = 'open'
  AND s.requested_datetime >= q.since AND s.pending = 0 AND s.duplicate_of IS NULL
""")


def _nearest(lat: float | None, long: float | None, candidates: list[Candidate], radius_m: float) -> int | None:
    """The choice among candidates in requested order: the nearest within the radius (a draft with
    a position), else the first (a draft matched on its address)."""
    best: tuple[float, int] | None = None
    for rid, rlat, rlong in candidates[:50]:
        if lat is not None and long is not None:
            if rlat is None or rlong is None:
                continue
            d = haversine_m(lat, long, rlat, rlong)
            if d > radius_m:
                continue
        else:
            d = 0.0
        if best is None or d < best[0]:
            best = (d, rid)
    return best[1] if best else None


async def find_duplicates(uow: UnitOfWork, *, drafts: Sequence[RequestDraft], ids: Sequence[int], now: datetime,
                          radius_m: float, window_hours: float) -> list[int | None]:
    """For each new request of a batch, in order, the open request of the same service it
    duplicates, by its service's policy (``radius_m``/``window_hours``: the defaults): the nearest
    within the radius and window (an earlier request of the same batch counts too: it was reported
    a moment before), or, without a position, the first with the same normalised address."""
    out: list[int | None] = [None] * len(drafts)
    limits = [policy(d.service.duplicates, radius_m=radius_m, window_hours=window_hours) for d in drafts]
    keys = [None if d.data.lat is not None else request_address_key(d.data) for d in drafts]
    looked = [i for i, d in enumerate(drafts)
              if not d.data.first_contact_resolution and limits[i][1] > 0
              and ((d.data.lat is not None and limits[i][0] > 0) or keys[i] is not None)]
    if not looked:
        return out
    since = {i: now - timedelta(hours=limits[i][1]) for i in looked}
    stored: dict[int, list[Candidate]] = {i: [] for i in looked}
    lookups: list[tuple[Any, ...]] = []  # (draft, code, cell, min_lat, max_lat, min_long, max_long, key, since)
    for i in looked:
        d, code = drafts[i].data, drafts[i].service.service_code
        if d.lat is not None and d.long is not None:
            around = box_around(d.lat, d.long, limits[i][0])
            cells: Sequence[int | None] = covering_cells(*around) or [None]
            lookups += [(i, code, cell, *around, None, since[i]) for cell in cells]
        else:
            lookups.append((i, code, None, None, None, None, None, keys[i], since[i]))
    if uow.dialect == "postgresql":
        names = ("draft", "codes", "cells", "min_lat", "max_lat", "min_long", "max_long", "address_keys", "since")
        q = {name: list(column) for name, column in zip(names, zip(*lookups, strict=True), strict=True)}
        rows: Any = await uow.session.execute(_PG_CANDIDATES, q)
    else:  # SQLite: the same lookups as one JSON text; times as SQLite stores them (naive UTC text)
        rows = await sqlite_fetch_all(uow.session, _SQLITE_CANDIDATES, {"lookups": orjson.dumps(
            [(*lk[:8], sqlite_time(lk[8])) for lk in lookups]).decode()})
    found: dict[int, list[tuple[Any, int, float | None, float | None]]] = {i: [] for i in looked}
    for i, rid, rlat, rlong, at in rows:
        found[i].append((at, rid, rlat, rlong))
    for i, candidates in found.items():  # the first 50 in time order, as the one-query-per-draft lookup kept
        stored[i] = [(rid, rlat, rlong) for _, rid, rlat, rlong in sorted(candidates)[:50]]
    for i in looked:
        d, code = drafts[i].data, drafts[i].service.service_code
        box = box_around(d.lat, d.long, limits[i][0]) if d.lat is not None and d.long is not None else None
        same_batch: list[Candidate] = []  # earlier drafts of this batch that are open originals themselves
        for j in range(i):
            o = drafts[j].data
            if (out[j] is not None or o.first_contact_resolution or drafts[j].service.type == "batch"
                    or drafts[j].service.service_code != code):
                continue
            if box is None:
                near = request_address_key(o) == keys[i]
            else:
                near = o.lat is not None and o.long is not None and box[0] <= o.lat <= box[1] and box[2] <= o.long <= box[3]
            if near:
                same_batch.append((ids[j], o.lat, o.long))
        out[i] = _nearest(d.lat, d.long, stored[i] + same_batch, limits[i][0])
    return out
