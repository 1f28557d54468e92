"""Benchmark: a city's 311 history import. ``history_rows`` requests in New York's open-data layout
(a CSV written here, quoted fields with line breaks included) through the import as
``intake311-worker import-requests`` runs it (intake311.history_import.run_import: read, check,
convert and COPY in committed chunks of ``history_chunk`` rows), into a migrated intake311 database
on PostgreSQL. Baseline: a bare COPY of the same rows (every column the import writes, exported in
binary from the imported table) into the same table of a second migrated database: same indexes,
no parsing, no checks. Both timings start after a CHECKPOINT; the ratio is rows/s of the import
over rows/s of the COPY (target >= 0.30).

With ``history_layers`` (default 1) the same file is imported once more into a third database that
has 4 boundary layers of 50 areas tiling the rows' box (bench.areas' grids, ~200 vertices an area),
each in two versions (from before the file's first row, and from its fifth day), so every row is
tagged in 4 layers as of its own date (issue 21): ``ratio_layers_vs_plain`` is that import's rows/s
over the import's without layers (same run, target >= 0.50: a request then writes 4 more rows,
``request_areas`` with their keys and index, beside its own)."""

from __future__ import annotations

import asyncio
import csv
import random
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import Databases, asyncpg_dsn, log, ratio
from citystat_common.localbroker import LocalBroker
from citystat_common.migrate import upgrade
from intake311.mapping import NYC_OPEN_DATA_COLUMNS as COLUMNS

MAPPING = Path(__file__).resolve().parents[1] / "deploy" / "mappings" / "nyc-open-data.toml"
AGENCIES = ("NYPD", "DSNY", "HPD", "DOT", "NYC H+H")
BOX = (-74.2, 40.5, -73.7, 40.9)  # min_long, min_lat, max_long, max_lat: where write_csv puts the rows
COMPLAINTS = [(f"{word} {n}", AGENCIES[n % len(AGENCIES)]) for n, word in enumerate(
    ("Noise - Residential", "Illegal Parking", "Blocked Driveway", "HEAT/HOT WATER", "Street Condition",
     "Abandoned Bike", "Dirty Conditions", "Noise - Street/Sidewalk", "Water System", "Rodent"))]
RESOLUTIONS = ("The Police Department responded to the complaint and took action to fix the condition.",
               "The Department of Sanitation investigated this complaint and found no violation.\nNo action taken.",
               "This complaint is a duplicate of a previous complaint.")


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(20)
    start = datetime(2024, 1, 1)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for i in range(rows):
            complaint, agency = COMPLAINTS[i % len(COMPLAINTS)]
            created = start + timedelta(seconds=i * 31 + rng.randint(0, 30))
            closed = i % 5 != 0
            closed_at = created + timedelta(hours=rng.randint(1, 240)) if closed else None
            lat, long = BOX[1] + rng.random() * (BOX[3] - BOX[1]), BOX[0] + rng.random() * (BOX[2] - BOX[0])
            row = dict.fromkeys(COLUMNS, "")
            row.update(
                unique_key=str(50_000_000 + i), created_date=created.strftime("%Y-%m-%dT%H:%M:%S.000"),
                closed_date=closed_at.strftime("%Y-%m-%dT%H:%M:%S.000") if closed_at else "", agency=agency,
                agency_name=agency, complaint_type=complaint, descriptor="Loud Music/Party",
                location_type="Street/Sidewalk", incident_zip="10007", incident_address=f"{100 + i % 900} CHURCH STREET",
                street_name="CHURCH STREET", city="NEW YORK", status="Closed" if closed else "In Progress",
                resolution_description=RESOLUTIONS[i % 3] if closed else "",
                resolution_action_updated_date=closed_at.strftime("%Y-%m-%dT%H:%M:%S.000") if closed_at else "",
                community_board="01 MANHATTAN", borough="MANHATTAN", open_data_channel_type=("PHONE", "ONLINE", "MOBILE", "UNKNOWN")[i % 4],
                latitude=f"{lat:.8f}", longitude=f"{long:.8f}", location=f"({lat:.8f}, {long:.8f})",
            )
            w.writerow(row.values())


async def _catalog(url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        now = datetime.now().astimezone()
        for code in AGENCIES:
            await conn.execute("INSERT INTO departments (code, name, active, updated_at) VALUES ($1, $1, true, $2)", code, now)
        for code, agency in COMPLAINTS:
            await conn.execute(
                "INSERT INTO services (service_code, service_name, description, group_name, keywords, type, department_code,"
                " sla_amount, sla_unit, sla_rules, calendar_code, attributes, active, created_at, updated_at)"
                " VALUES ($1, $1, '', '', '', 'realtime', $2, 5, 'calendar_days', '[]', 'CITY', '[]', true, $3, $3)",
                code, agency, now)
    finally:
        await conn.close()


async def _checkpoint(url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _import(url: str, path: Path, chunk: int) -> tuple[float, Any]:
    from citystat_common.auth import Actor
    from citystat_common.db import create_engine, session_factory
    from citystat_common.uow import UnitOfWork
    from intake311.config import Settings
    from intake311.deps import Deps
    from intake311.history_import import run_import
    from intake311.mapping import Mapping
    from intake311.models import PLUMBING

    settings = Settings(database_url=url, city_timezone="America/New_York")
    mapping = Mapping.load(MAPPING, channels=settings.channels, closure_reasons=settings.closure_reasons)
    engine = create_engine(url)
    sessions = session_factory(engine)
    try:
        t0 = time.perf_counter()
        with path.open("rb") as source:
            report = await run_import(lambda: UnitOfWork(sessions, PLUMBING), Deps(settings), source=source,
                                      file_name=path.name, mapping=mapping, actor=Actor(kind="key", name="bench"),
                                      chunk_rows=chunk)
        return time.perf_counter() - t0, report
    finally:
        await engine.dispose()


async def _bare_copy(src: str, dst: str, dump: Path) -> tuple[float, int]:
    from intake311.history_store import COLUMNS as WRITTEN

    cols = ", ".join(f'"{c}"' for c in WRITTEN)
    conn = await asyncpg.connect(asyncpg_dsn(src))
    try:
        await conn.copy_from_query(f"SELECT {cols} FROM service_requests WHERE legacy_id IS NOT NULL ORDER BY id",
                                   output=str(dump), format="binary")
    finally:
        await conn.close()
    await _checkpoint(dst)
    conn = await asyncpg.connect(asyncpg_dsn(dst))
    try:
        t0 = time.perf_counter()
        await conn.copy_to_table("service_requests", source=str(dump), columns=list(WRITTEN), format="binary")
        elapsed = time.perf_counter() - t0
        return elapsed, int(await conn.fetchval("SELECT count(*) FROM service_requests"))
    finally:
        await conn.close()


def run(cfg: Any, dbs: Databases, broker: LocalBroker, folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    n = cfg.history_rows
    path = folder / "nyc-history.csv"
    t0 = time.perf_counter()
    write_csv(path, n)
    log(f"history: {n:,} rows written ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")
    src, dst = dbs.pg("history_import"), dbs.pg("history_copy")
    for url in (src, dst):
        upgrade("intake311", url)
        asyncio.run(_catalog(url))
    asyncio.run(_checkpoint(src))
    import_s, report = asyncio.run(_import(src, path, cfg.history_chunk))
    if report.rows_imported != n:
        raise RuntimeError(f"history: {report.rows_imported} of {n} rows imported: {report.lines()[-5:]}")
    copy_s, copied = asyncio.run(_bare_copy(src, dst, folder / "history.copy"))
    if copied != n:
        raise RuntimeError(f"history: the bare COPY stored {copied} of {n} rows")
    out = {"rows": n, "chunk_rows": cfg.history_chunk, "backend": "postgresql", "file_mb": round(path.stat().st_size / 1e6, 1),
           "import_s": round(import_s, 2), "import_rows_per_s": round(n / import_s, 1),
           "copy_s": round(copy_s, 2), "copy_rows_per_s": round(n / copy_s, 1),
           "ratio_vs_copy": ratio(n / import_s, n / copy_s)}
    log(f"history: import {out['import_rows_per_s']:,} rows/s, bare COPY {out['copy_rows_per_s']:,} rows/s, "
        f"ratio {out['ratio_vs_copy']}")
    if cfg.history_layers:
        out["with_layers"] = _with_layers(cfg, dbs, path, import_s)
    return out


def _with_layers(cfg: Any, dbs: Databases, path: Path, plain_s: float) -> dict[str, Any]:
    """The same import into a database with 4 layers in 2 versions each: every row tagged as of its date."""
    from bench.areas import _load_layers

    n = cfg.history_rows
    url = dbs.pg("history_layers")
    upgrade("intake311", url)
    asyncio.run(_catalog(url))
    areas = asyncio.run(_load_layers(url, box=BOX, starts=datetime(2023, 1, 1).astimezone()))
    areas += asyncio.run(_load_layers(url, box=BOX, starts=datetime(2024, 1, 5).astimezone()))
    asyncio.run(_checkpoint(url))
    layers_s, report = asyncio.run(_import(url, path, cfg.history_chunk))
    if report.rows_imported != n:
        raise RuntimeError(f"history with layers: {report.rows_imported} of {n} rows imported")
    tagged = asyncio.run(_tag_counts(url))
    if tagged["rows"] != 4 * n:
        raise RuntimeError(f"history with layers: {tagged} request_areas rows, expected {4 * n}")
    out = {"areas_loaded": areas, "import_s": round(layers_s, 2), "import_rows_per_s": round(n / layers_s, 1),
           "request_areas": tagged, "ratio_layers_vs_plain": ratio(n / layers_s, n / plain_s)}
    log(f"history: with 4 layers (2 versions each) {out['import_rows_per_s']:,} rows/s, "
        f"ratio to the import without layers {out['ratio_layers_vs_plain']}; tags {tagged}")
    return out


async def _tag_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        row = await conn.fetchrow("SELECT count(*) AS rows, count(code) AS inside, count(DISTINCT version_id) AS versions "
                                  "FROM request_areas")
        return {k: int(v) for k, v in row.items()}
    finally:
        await conn.close()
