"""Benchmark 3: bulk indicator ingest. ``bulk_rows`` observations (indicator-major: each indicator's
daily history in order, ``bulk_periods`` days each) through POST /observations/bulk in JSON chunks
of ``bulk_chunk`` rows, sequentially, against the indicators service on PostgreSQL (api through the
launcher, worker running); baseline: asyncpg ``copy_records_to_table`` of the same rows (every
column of ``observations``) into a bare table of the same columns (no keys, no indexes) in the
same database. Both timings exclude building the payloads."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from bench.common import BenchStack, Databases, asyncpg_dsn, log, ratio
from bench.indsetup import ANALYST, clone_indicators, create_template, seed_department
from citystat_common.localbroker import LocalBroker
from citystat_common.migrate import upgrade

FIRST_DAY = date(2023, 7, 1)


def _rows(codes: list[str], periods: int, total: int) -> list[tuple[str, date, float]]:
    rng = random.Random(42)
    days = [FIRST_DAY + timedelta(days=i) for i in range(periods)]
    out: list[tuple[str, date, float]] = []
    for code in codes:
        for d in days:
            out.append((code, d, float(rng.randint(80, 120))))
            if len(out) >= total:
                return out
    return out


async def _copy(url: str, rows: list[tuple[str, date, float]], ids: dict[str, str]) -> float:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_copy")
        await conn.execute("CREATE TABLE bench_copy (LIKE observations INCLUDING DEFAULTS)")
        cols = [r["column_name"] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'observations' ORDER BY ordinal_position")]
        now = datetime.now(UTC)
        base = {"period_end": None, "status": "green", "raw_status": "green", "miss": 0.0, "reference": 100.0,
                "streak": 0, "reason": "within 5% of target", "revision": 1, "note": None, "source": "bulk",
                "updated_by": "analyst", "updated_at": now}
        records = []
        for code, d, v in rows:
            rec = base | {"indicator_id": ids[code], "period_start": d, "period_end": d, "period_label": d.isoformat(),
                          "value": v}
            records.append(tuple(rec[c] for c in cols))
        t0 = time.perf_counter()
        await conn.copy_records_to_table("bench_copy", records=records, columns=cols)
        elapsed = time.perf_counter() - t0
        n = await conn.fetchval("SELECT count(*) FROM bench_copy")
        assert n == len(rows), (n, len(rows))
        await conn.execute("DROP TABLE bench_copy")
        return elapsed
    finally:
        await conn.close()


async def _ids(url: str, prefix: str) -> dict[str, str]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return {r["code"]: r["id"] for r in await conn.fetch("SELECT code, id FROM indicators WHERE code LIKE $1", prefix + "%")}
    finally:
        await conn.close()


async def _count(url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM observations"))
    finally:
        await conn.close()


def run(cfg: Any, dbs: Databases, broker: LocalBroker, folder: Path) -> dict[str, Any]:
    url = dbs.pg("bulk")
    upgrade("indicators", url)
    seed_department(url)
    n_ind = -(-cfg.bulk_rows // cfg.bulk_periods)
    out: dict[str, Any] = {"rows": cfg.bulk_rows, "chunk_rows": cfg.bulk_chunk, "indicators": n_ind,
                           "periods_per_indicator": cfg.bulk_periods, "frequency": "daily", "backend": "postgresql"}
    stack = BenchStack(folder / "bulk", {"indicators": url}, broker, extra_env={"INDICATORS_RATE_LIMIT_PER_MINUTE": "0"})
    try:
        stack.start("indicators")
        stack.wait_healthy()
        base = stack.url("indicators")
        create_template(base, "BULKTPL", frequency="daily", targets=[{"period": FIRST_DAY.isoformat(), "value": 100}])
        codes = clone_indicators(url, "BULKTPL", "BULK", 1, n_ind)
        rows = _rows(codes, cfg.bulk_periods, cfg.bulk_rows)
        chunks = [orjson.dumps([{"indicator_code": c, "period": d.isoformat(), "value": v} for c, d, v in rows[i:i + cfg.bulk_chunk]])
                  for i in range(0, len(rows), cfg.bulk_chunk)]
        log(f"bulk: {len(rows):,} rows for {n_ind:,} indicators in {len(chunks)} calls")
        times = []
        with httpx.Client(base_url=base, headers=ANALYST | {"Content-Type": "application/json"}, timeout=600) as client:
            t0 = time.perf_counter()
            for body in chunks:
                t1 = time.perf_counter()
                r = client.post("/observations/bulk", content=body)
                times.append(time.perf_counter() - t1)
                if r.status_code != 200:
                    raise RuntimeError(f"bulk answered {r.status_code}: {r.text[:500]}")
            api_s = time.perf_counter() - t0
        stored = asyncio.run(_count(url))
        out["stored"] = stored
        out["api_s"] = round(api_s, 2)
        out["api_rows_per_s"] = round(len(rows) / api_s, 1)
        out["call_ms_p50"] = round(sorted(times)[len(times) // 2] * 1000, 1)
        out["call_ms_max"] = round(max(times) * 1000, 1)
        ids = asyncio.run(_ids(url, "BULK"))
        copy_s = asyncio.run(_copy(url, rows, ids))
        out["copy_s"] = round(copy_s, 2)
        out["copy_rows_per_s"] = round(len(rows) / copy_s, 1)
        out["ratio_vs_copy"] = ratio(out["api_rows_per_s"], out["copy_rows_per_s"], 4)
    finally:
        stack.stop_all()
    log(f"bulk: API {out.get('api_rows_per_s')} rows/s, COPY {out.get('copy_rows_per_s')} rows/s, ratio {out.get('ratio_vs_copy')}")
    return out
