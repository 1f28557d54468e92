"""Benchmark 3: bulk indicator ingest. ``bulk_rows`` observations (indicator-major: each indicator's
daily history in order, ``bulk_periods`` days each) through POST /observations/bulk in JSON chunks
of ``bulk_chunk`` rows against the indicators service on PostgreSQL, started by its own entry point
(migrate, then uvicorn) with ``bulk_web_workers`` api processes as docker-compose deploys it, its
worker running, ``bulk_clients`` calls in flight at once, as a loader with that many workers would
send them. With more than one api process a second pass on a fresh database runs one process, to
show what the second adds. Baseline: asyncpg ``copy_records_to_table`` of the same rows (every
column of ``observations``) into a bare table of the same columns (no keys, no indexes) in the same
database, the median of ``bulk_copy_repeats`` COPYs, half before the API load and half after both
passes. All timings exclude building the payloads, and each starts after a CHECKPOINT."""

from __future__ import annotations

import asyncio
import random
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from bench.common import BenchStack, Databases, asyncpg_dsn, log, ratio, tree_cpu_seconds
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


async def _checkpoint(url: str) -> None:
    """Each timed phase starts from a checkpoint, so neither pays for flushing the other's writes
    (without it the COPY right after the API's million rows swung 410k-710k rows/s between runs)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _copy(url: str, rows: list[tuple[str, date, float]], ids: dict[str, str], repeats: int) -> list[float]:
    """``repeats`` timed COPYs of the rows, each into a fresh bare table after a checkpoint."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
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
        times = []
        for _ in range(repeats):
            await conn.execute("DROP TABLE IF EXISTS bench_copy")
            await conn.execute("CREATE TABLE bench_copy (LIKE observations INCLUDING DEFAULTS)")
            await conn.execute("CHECKPOINT")
            t0 = time.perf_counter()
            await conn.copy_records_to_table("bench_copy", records=records, columns=cols)
            times.append(time.perf_counter() - t0)
            n = await conn.fetchval("SELECT count(*) FROM bench_copy")
            assert n == len(rows), (n, len(rows))
        await conn.execute("DROP TABLE bench_copy")
        return times
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


def _post_all(base: str, chunks: list[bytes], clients: int, times: list[float]) -> None:
    """POST the chunks in order, ``clients`` calls in flight (each client takes the next chunk).
    Each call on a fresh connection: with keep-alive both clients could stay on one uvicorn worker
    for the whole run (seen: 173k against 224-242k rows/s); a new connection is accepted by a worker
    that is waiting, as a balancer in front of the workers would spread them."""
    todo = iter(enumerate(chunks))
    lock = threading.Lock()
    headers = ANALYST | {"Content-Type": "application/json", "Connection": "close"}

    def client_loop() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
            while True:
                with lock:
                    nxt = next(todo, None)
                if nxt is None:
                    return
                t1 = time.perf_counter()
                r = client.post("/observations/bulk", content=nxt[1])
                times.append(time.perf_counter() - t1)
                if r.status_code != 200:
                    raise RuntimeError(f"bulk call {nxt[0]} answered {r.status_code}: {r.text[:500]}")

    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client_loop) for _ in range(clients)]:
            f.result()


def _prepare(cfg: Any, dbs: Databases, label: str) -> tuple[str, int]:
    url = dbs.pg(label)
    upgrade("indicators", url)
    seed_department(url)
    return url, -(-cfg.bulk_rows // cfg.bulk_periods)


def _api_pass(cfg: Any, url: str, n_ind: int, broker: LocalBroker, folder: Path, workers: int,
              before: Callable[[str, list[tuple[str, date, float]]], None] | None = None) -> dict[str, Any]:
    """The rows through the API, the indicators service run by its own entry point with
    ``workers`` uvicorn processes (and its worker). ``before`` runs once the rows exist, untimed."""
    out: dict[str, Any] = {"web_workers": workers}
    stack = BenchStack(folder, {"indicators": url}, broker, launcher_api=False,
                       extra_env={"INDICATORS_RATE_LIMIT_PER_MINUTE": "0", "INDICATORS_WEB_WORKERS": str(workers)})
    try:
        stack.start("indicators")
        stack.wait_healthy()
        base = stack.url("indicators")
        create_template(base, "BULKTPL", frequency="daily", targets=[{"period": FIRST_DAY.isoformat(), "value": 100}])
        codes = clone_indicators(url, "BULKTPL", "BULK", 1, n_ind)
        rows = _rows(codes, cfg.bulk_periods, cfg.bulk_rows)
        chunks = [orjson.dumps([{"indicator_code": c, "period": d.isoformat(), "value": v} for c, d, v in rows[i:i + cfg.bulk_chunk]])
                  for i in range(0, len(rows), cfg.bulk_chunk)]
        log(f"bulk: {len(rows):,} rows for {n_ind:,} indicators in {len(chunks)} calls, {workers} api process(es)")
        if before is not None:
            before(url, rows)
        asyncio.run(_checkpoint(url))
        times: list[float] = []
        api_pid = stack.pids("indicators")["api"]
        cpu0, t0 = tree_cpu_seconds(api_pid), time.perf_counter()
        _post_all(base, chunks, max(1, cfg.bulk_clients), times)
        api_s, api_cpu = time.perf_counter() - t0, tree_cpu_seconds(api_pid) - cpu0
        # the api's own CPU per row: steadier than rows/s on a machine whose speed drifts
        out["api_cpu_us_per_row"] = round(api_cpu / len(rows) * 1e6, 2)
        out["api_cpu_cores"] = round(api_cpu / api_s, 2)
        out["stored"] = asyncio.run(_count(url))
        if out["stored"] != len(rows):
            raise RuntimeError(f"bulk: {out['stored']} rows stored of {len(rows)}")
        out["api_s"] = round(api_s, 2)
        out["api_rows_per_s"] = round(len(rows) / api_s, 1)
        out["call_ms_p50"] = round(sorted(times)[len(times) // 2] * 1000, 1)
        out["call_ms_max"] = round(max(times) * 1000, 1)
    finally:
        stack.stop_all()
    return out


def run(cfg: Any, dbs: Databases, broker: LocalBroker, folder: Path) -> dict[str, Any]:
    url, n_ind = _prepare(cfg, dbs, "bulk")
    out: dict[str, Any] = {"rows": cfg.bulk_rows, "chunk_rows": cfg.bulk_chunk, "indicators": n_ind,
                           "periods_per_indicator": cfg.bulk_periods, "clients": cfg.bulk_clients, "frequency": "daily",
                           "backend": "postgresql"}
    copies: list[float] = []
    half = max(1, cfg.bulk_copy_repeats // 2)
    baseline: dict[str, Any] = {}  # the headline pass's rows and indicator ids, for the COPYs after it

    def copy_before(url: str, rows: list[tuple[str, date, float]]) -> None:
        # Half the baseline COPYs before the API load and half after, so the machine's drift over
        # the run (seen: the same COPY at 410k and at 710k rows/s minutes apart) lands on both sides.
        baseline.update(rows=rows, ids=asyncio.run(_ids(url, "BULK")))
        copies.extend(asyncio.run(_copy(url, rows, baseline["ids"], half)))

    # The headline pass runs the api as deployed (docker-compose: INDICATORS_WEB_WORKERS=2); a
    # second pass on a fresh database with one process shows what the second process adds.
    out.update(_api_pass(cfg, url, n_ind, broker, folder / "bulk", cfg.bulk_web_workers, copy_before))
    if cfg.bulk_web_workers != 1:
        url1, _ = _prepare(cfg, dbs, "bulk1")
        out["one_process"] = _api_pass(cfg, url1, n_ind, broker, folder / "bulk1", 1)
    copies += asyncio.run(_copy(url, baseline["rows"], baseline["ids"], max(1, cfg.bulk_copy_repeats - half)))
    copy_s = statistics.median(copies)
    out["copy_runs_s"] = [round(t, 2) for t in copies]
    out["copy_s"] = round(copy_s, 2)
    out["copy_rows_per_s"] = round(len(baseline["rows"]) / copy_s, 1)
    out["ratio_vs_copy"] = ratio(out["api_rows_per_s"], out["copy_rows_per_s"], 4)
    if "one_process" in out:
        out["one_process"]["ratio_vs_copy"] = ratio(out["one_process"]["api_rows_per_s"], out["copy_rows_per_s"], 4)
    log(f"bulk: API {out.get('api_rows_per_s')} rows/s with {cfg.bulk_web_workers} api process(es) "
        f"({out.get('api_cpu_us_per_row')} us of api CPU per row), COPY {out.get('copy_rows_per_s')} rows/s, "
        f"ratio {out.get('ratio_vs_copy')}; one process: {(out.get('one_process') or {}).get('ratio_vs_copy')}")
    return out
