"""Benchmark 2: GET /requests.json with filters at a small and a large number of stored requests
(default 10,000 and 1,000,000). Rows are loaded straight into intake311's database with bulk SQL
(one INSERT ... SELECT over generate_series on PostgreSQL, a recursive CTE on SQLite) matching
its models, not through the API. The same filtered GETs are timed at both sizes through the
running api (launcher, same uvicorn settings as the intake benchmark), one api per size, the GETs
alternating between them; the ratio shows whether the indexes hold."""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.common import BenchStack, Databases, asyncpg_dsn, log, migrate, ratio, summary_ms
from citystat_common.localbroker import LocalBroker
from intake311.models import CELL_DEG, CELL_ROW, grid_cell

SPAN_DAYS = 80  # rows spread over the last 80 days: inside Open311's default 90-day window

COLUMNS = ("pending, service_code, department_code, channel, status, detailed_status, closure_reason, "
           "first_contact_resolution, description, lat, long, address_string, attributes, service_notice, "
           "requested_datetime, updated_datetime, expected_datetime, closed_datetime, created_by, cell")

# intake311.models.grid_cell (the service's column default) in SQL, as in its migration 0004:
# floor((clamped coordinate + bound) / CELL_DEG), row * CELL_ROW + column; _check_cells compares.
PG_CELL = (f"floor((LEAST(90::float8, GREATEST(-90::float8, p.lat)) + 90::float8) / {CELL_DEG}::float8)::bigint"
           f" * {CELL_ROW} + floor((LEAST(180::float8, GREATEST(-180::float8, p.lng)) + 180::float8) / {CELL_DEG}::float8)::bigint")
SQLITE_CELL = (f"CAST((min(90.0, max(-90.0, lat)) + 90.0) / {CELL_DEG} AS INTEGER) * {CELL_ROW}"
               f" + CAST((min(180.0, max(-180.0, lng)) + 180.0) / {CELL_DEG} AS INTEGER)")

PG_INSERT = f"""
INSERT INTO service_requests ({COLUMNS})
SELECT false, s.service_code, s.department_code,
       (ARRAY['phone','web','mobile_app','sms'])[1 + (g % 4)::int],
       CASE WHEN g % 10 < 3 THEN 'open' ELSE 'closed' END,
       CASE WHEN g % 10 < 3 THEN 'open' ELSE 'closed' END,
       CASE WHEN g % 10 < 3 THEN NULL ELSE 'fixed' END,
       false, 'Benchmark row ' || g, p.lat, p.lng,
       (g % 9000)::text || ' Market St', '{{}}'::json, NULL,
       r.t, r.t, r.t + interval '3 days', CASE WHEN g % 10 < 3 THEN NULL ELSE r.t + interval '2 days' END, 'bench',
       {PG_CELL}
FROM generate_series($1::bigint, $2::bigint) AS g
JOIN (SELECT service_code, department_code, (row_number() OVER (ORDER BY service_code)) - 1 AS k,
             count(*) OVER () AS n FROM services WHERE active) s ON s.k = g % s.n
CROSS JOIN LATERAL (SELECT now() - (random() + g * 0) * interval '{SPAN_DAYS} days' AS t) r
CROSS JOIN LATERAL (SELECT 39.87 + (random() + g * 0) * 0.16 AS lat, -75.25 + (random() + g * 0) * 0.20 AS lng) p
"""

SQLITE_INSERT = f"""
WITH RECURSIVE g(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM g WHERE x < ?),
s AS (SELECT service_code, department_code, (row_number() OVER (ORDER BY service_code)) - 1 AS k,
             count(*) OVER () AS n FROM services WHERE active),
r AS MATERIALIZED (SELECT x, strftime('%Y-%m-%d %H:%M:%f', 'now', printf('-%d seconds', abs(random()) % ({SPAN_DAYS} * 86400))) AS t,
             39.87 + (abs(random()) % 1000000) / 1000000.0 * 0.16 AS lat,
             -75.25 + (abs(random()) % 1000000) / 1000000.0 * 0.20 AS lng FROM g)
INSERT INTO service_requests ({COLUMNS})
SELECT 0, s.service_code, s.department_code,
       CASE x % 4 WHEN 0 THEN 'phone' WHEN 1 THEN 'web' WHEN 2 THEN 'mobile_app' ELSE 'sms' END,
       CASE WHEN x % 10 < 3 THEN 'open' ELSE 'closed' END,
       CASE WHEN x % 10 < 3 THEN 'open' ELSE 'closed' END,
       CASE WHEN x % 10 < 3 THEN NULL ELSE 'fixed' END,
       0, 'Benchmark row ' || x, lat, lng,
       (x % 9000) || ' Market St', '{{}}', NULL,
       t, t, datetime(t, '+3 days'), CASE WHEN x % 10 < 3 THEN NULL ELSE datetime(t, '+2 days') END, 'bench',
       {SQLITE_CELL}
FROM r JOIN s ON s.k = r.x % s.n
"""


def _shapes(now: datetime) -> dict[str, dict[str, str]]:
    def iso(d: datetime) -> str:
        return d.strftime("%Y-%m-%dT%H:%M:%SZ")

    return {
        # the headline: one service's open requests in a 30-day window, first page of 50
        "service+status+30d": {"service_code": "POTHOLE", "status": "open", "start_date": iso(now - timedelta(days=30)),
                               "end_date": iso(now), "page_size": "50"},
        # a neighbourhood: bounding box (~1 km) over the default 90-day window
        "bbox+open": {"bbox": "-75.172,39.948,-75.160,39.957", "status": "open", "page_size": "50"},
        # one department's requests, newest first
        "agency": {"agency_responsible": "STREETS", "page_size": "50"},
        # around a point (radius search)
        "near 300m": {"lat": "39.9526", "long": "-75.1652", "radius": "300", "page_size": "50"},
        # incremental sync: changed in the last day
        "updated_after 1d": {"updated_after": iso(now - timedelta(days=1)), "page_size": "50"},
    }


CHECK_SQL = "SELECT lat, long, cell FROM service_requests ORDER BY id DESC LIMIT 5000"


def _check_cells(rows: Any) -> None:
    """The loader's SQL cell must be the one the service computes (intake311.models.grid_cell)."""
    bad = [tuple(r) for r in rows if r[2] != grid_cell(r[0], r[1])]
    if bad or not rows:
        raise RuntimeError(f"bulk-loaded cells differ from grid_cell: {bad[:3]}")


async def _load_pg(url: str, lo: int, hi: int) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        step = 200_000
        for a in range(lo, hi + 1, step):
            await conn.execute(PG_INSERT, a, min(hi, a + step - 1))
        await conn.execute("ANALYZE service_requests")
        _check_cells(await conn.fetch(CHECK_SQL))
    finally:
        await conn.close()


def _load_sqlite(url: str, lo: int, hi: int) -> None:
    path = url.split(":///", 1)[1]
    conn = sqlite3.connect(path)
    try:
        step = 200_000
        for a in range(lo, hi + 1, step):
            conn.execute(SQLITE_INSERT, (a, min(hi, a + step - 1)))
            conn.commit()
        conn.execute("ANALYZE")
        conn.commit()
        _check_cells(conn.execute(CHECK_SQL).fetchall())
    finally:
        conn.close()


def _load(backend: str, url: str, lo: int, hi: int) -> float:
    t0 = time.monotonic()
    if backend == "postgresql":
        asyncio.run(_load_pg(url, lo, hi))
    else:
        _load_sqlite(url, lo, hi)
    return round(time.monotonic() - t0, 1)


def _measure(small_base: str, large_base: str, shapes: dict[str, dict[str, str]], repeats: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each shape's GETs alternate between the small and the large database (one api on each),
    so a drift of the machine's speed during the run lands on both sizes alike."""
    small: dict[str, Any] = {}
    large: dict[str, Any] = {}
    with httpx.Client(base_url=small_base, timeout=60) as cs, httpx.Client(base_url=large_base, timeout=60) as cl:
        for name, params in shapes.items():
            results = []
            for client in (cs, cl):
                r = client.get("/requests.json", params=params)
                if r.status_code != 200:
                    raise RuntimeError(f"GET /requests.json {params} answered {r.status_code}: {r.text[:300]}")
                results.append(len(r.json()))
                for _ in range(3):
                    client.get("/requests.json", params=params)
            times: tuple[list[float], list[float]] = ([], [])
            for _ in range(repeats):
                for client, t in zip((cs, cl), times, strict=True):
                    t0 = time.perf_counter()
                    client.get("/requests.json", params=params)
                    t.append(time.perf_counter() - t0)
            small[name] = summary_ms(times[0]) | {"results": results[0]}
            large[name] = summary_ms(times[1]) | {"results": results[1]}
    return small, large


def run_backend(cfg: Any, dbs: Databases, broker: LocalBroker, folder: Path, backend: str, large: int) -> dict[str, Any]:
    urls = {size: dbs.pg(f"query_{size}") if backend == "postgresql" else dbs.sqlite(f"query_{size}")
            for size in ("small", "large")}
    res: dict[str, Any] = {"small_rows": cfg.query_small, "large_rows": large}
    stacks = {size: BenchStack(folder / f"query-{backend}-{size}", {"intake311": url}, broker,
                               extra_env={"INTAKE311_RATE_LIMIT_PER_MINUTE": "0"}) for size, url in urls.items()}
    try:
        for size, url in urls.items():
            migrate("intake311", url)
            res[f"load_{size}_s"] = _load(backend, url, 1, cfg.query_small if size == "small" else large)
            stacks[size].start("intake311", workers=0)
        for stack in stacks.values():
            stack.wait_healthy()
        shapes = _shapes(datetime.now(UTC))
        small, large_m = _measure(stacks["small"].url("intake311"), stacks["large"].url("intake311"), shapes,
                                  cfg.query_repeats)
    finally:
        for stack in stacks.values():
            stack.stop_all()
    res["shapes"] = {
        name: {"params": shapes[name], "small": small[name], "large": large_m[name],
               "ratio_p50": ratio(large_m[name]["p50_ms"], small[name]["p50_ms"], 2),
               "ratio_p95": ratio(large_m[name]["p95_ms"], small[name]["p95_ms"], 2)}
        for name in shapes
    }
    res["headline_ratio"] = res["shapes"]["service+status+30d"]["ratio_p50"]
    res["worst_filtered_ratio"] = max(v["ratio_p50"] for v in res["shapes"].values())
    res["median_of_ratios"] = round(statistics.median(v["ratio_p50"] for v in res["shapes"].values()), 2)
    return res


def run(cfg: Any, dbs: Databases, broker: LocalBroker, folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"method": "sequential GETs through an api per size, alternating between the sizes; "
                                     "p50 of query_repeats per shape and size"}
    for backend in cfg.query_backends:
        large = cfg.query_large if backend == "postgresql" else min(cfg.query_large, cfg.query_large_sqlite)
        out[backend] = run_backend(cfg, dbs, broker, folder, backend, large)
        q = out[backend]
        log(f"query {backend}: headline {q['headline_ratio']}x, worst {q['worst_filtered_ratio']}x")
    return out
