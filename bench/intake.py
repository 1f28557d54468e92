"""Benchmark 1 (intake throughput) and the intake part of 6 (memory): sustained Open311
POST /requests.json with wrk against the full intake311 service (database + outbox, worker
relaying to the broker) on PostgreSQL and SQLite, and against the bare baseline app, all under
the same launcher (same uvicorn kwargs)."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.common import (
    ROOT,
    BareServer,
    BenchStack,
    Databases,
    RssSampler,
    histogram_totals,
    log,
    migrate,
    ratio,
    rss_mb,
    run_wrk,
)
from bench.launcher import SERVER_KWARGS
from bench.query import _load
from citystat_common.db import create_engine
from citystat_common.localbroker import LocalBroker
from citystat_common.testing import TEST_KEYS

POST_SCRIPT = ROOT / "wrk_post.lua"
SERVICE_CODE = "POTHOLE"
EXTRA_FIELDS = "attribute%5BSIZE%5D=large"


def _post_args() -> list[str]:
    return [TEST_KEYS["web"], SERVICE_CODE, EXTRA_FIELDS]


def _check_post(base: str) -> dict[str, Any]:
    body = {"api_key": TEST_KEYS["web"], "service_code": SERVICE_CODE, "lat": "39.95", "long": "-75.16",
            "attribute[SIZE]": "large", "description": "Benchmark request", "address_string": "1400 JFK Blvd"}
    r = httpx.post(f"{base}/requests.json", data=body, timeout=10)
    if r.status_code != 201:
        raise RuntimeError(f"POST /requests.json answered {r.status_code}: {r.text[:500]}")
    return r.json()[0]


async def _counts(url: str) -> tuple[int, int]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            n = (await conn.execute(sa.text("SELECT count(*) FROM service_requests"))).scalar_one()
            pending = (await conn.execute(sa.text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))).scalar_one()
        return int(n), int(pending)
    finally:
        await engine.dispose()


def _wait_drained(url: str, timeout: float) -> tuple[float | None, int, int]:
    t0 = time.monotonic()
    while True:
        n, pending = asyncio.run(_counts(url))
        if pending == 0:
            return round(time.monotonic() - t0, 2), n, 0
        if time.monotonic() - t0 > timeout:
            return None, n, pending
        time.sleep(0.5)


def run(cfg: Any, dbs: Databases, broker: LocalBroker, folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"server_settings": SERVER_KWARGS, "duration_s": cfg.intake_duration,
                           "connections": cfg.connections, "wrk_threads": cfg.wrk_threads,
                           "body": f"service_code={SERVICE_CODE}&lat&long (random)&{EXTRA_FIELDS}&description&address_string&api_key"}
    load = dict(duration=cfg.intake_duration, connections=cfg.connections, threads=cfg.wrk_threads)
    warm = dict(duration=cfg.warmup, connections=cfg.connections, threads=cfg.wrk_threads)

    log("intake: bare baseline")
    with BareServer(folder) as bare:  # kept up: its rounds alternate with the service's
        assert bare.proc is not None
        bare_pids = [bare.proc.pid]
        run_wrk(f"{bare.url}/ping", **warm)
        out["wrk_ceiling_get"] = run_wrk(f"{bare.url}/ping", server_pids=bare_pids, **load)
        run_wrk(f"{bare.url}/requests.json", script=POST_SCRIPT, script_args=_post_args(), **warm)
        out["baseline"] = run_wrk(f"{bare.url}/requests.json", script=POST_SCRIPT, script_args=_post_args(),
                                  server_pids=bare_pids, **load)
        out["baseline"]["rss_mb"] = rss_mb(bare.proc.pid)
        base = out["baseline"]
        log(f"intake: baseline {base['rps']} req/s p99 {base['p99_ms']} ms; GET ceiling {out['wrk_ceiling_get']['rps']} req/s")

        def bare_round() -> dict[str, Any]:
            return run_wrk(f"{bare.url}/requests.json", script=POST_SCRIPT, script_args=_post_args(),
                           server_pids=bare_pids, **load)

        if "postgresql" in cfg.intake_backends and cfg.naive_reference:
            out["naive_reference_postgresql"] = _naive(dbs, folder, warm, load, base)
        for backend in cfg.intake_backends:
            out[backend] = _service(cfg, dbs, broker, folder, backend, warm, load, bare_round)
    return out


def _naive(dbs: Databases, folder: Path, warm: dict[str, Any], load: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    log("intake: naive reference (insert a row and an outbox row) on PostgreSQL")
    with BareServer(folder, "bench.bareapp:create_naive_app", {"BENCH_NAIVE_DATABASE_URL": dbs.pg("naive")}) as naive:
        assert naive.proc is not None
        run_wrk(f"{naive.url}/requests.json", script=POST_SCRIPT, script_args=_post_args(), **warm)
        ref = run_wrk(f"{naive.url}/requests.json", script=POST_SCRIPT, script_args=_post_args(),
                      server_pids=[naive.proc.pid], **load)
    ref["ratio_rps_vs_baseline"] = ratio(ref["ok_rps"], base["rps"])
    ref["ratio_p99_vs_baseline"] = ratio(ref["p99_ms"], base["p99_ms"], 2)
    log(f"intake naive reference: {ref['ok_rps']} req/s ({ref['ratio_rps_vs_baseline']} of baseline)")
    return ref


def _group_commit(base: str) -> tuple[float, float, float]:
    """The intake group commit's (batches, items, write seconds) so far, from the api's /metrics."""
    name = {"name": "intake311_requests"}
    size = histogram_totals(base, "citystat_group_commit_batch_size", name) or (0.0, 0.0)
    write = histogram_totals(base, "citystat_group_commit_write_seconds", name) or (0.0, 0.0)
    return size[0], size[1], write[1]


def _service(cfg: Any, dbs: Databases, broker: LocalBroker, folder: Path, backend: str, warm: dict[str, Any],
             load: dict[str, Any], bare_round: Any) -> dict[str, Any]:
    """``intake_rounds`` rounds of (bare endpoint, service), back to back: each ratio is taken
    between measurements seconds apart, so the machine's drift over a run (the bare endpoint alone
    moved 7,500-8,900 req/s between runs) does not land on one side; the median round is reported."""
    url = dbs.pg("intake") if backend == "postgresql" else dbs.sqlite("intake")
    migrate("intake311", url)
    # A city's database is not empty, and its statistics are current (autovacuum): measure that
    # state, not the first minute of a new install, where the planner still thinks the table
    # has no rows and picks no index.
    res_preload = _load(backend, url, 1, cfg.intake_preload) if cfg.intake_preload else 0.0
    stack = BenchStack(folder / f"intake-{backend}", {"intake311": url}, broker,
                       extra_env={"INTAKE311_RATE_LIMIT_PER_MINUTE": "0"})
    res: dict[str, Any] = {"preloaded_requests": cfg.intake_preload, "preload_s": res_preload}
    rounds: list[dict[str, Any]] = []
    try:
        stack.start("intake311")
        stack.wait_healthy(timeout=90)
        time.sleep(3)
        pids = stack.pids("intake311")
        res["rss_idle_mb"] = {k: rss_mb(p) for k, p in pids.items()}
        _check_post(stack.url("intake311"))
        run_wrk(f"{stack.url('intake311')}/requests.json", script=POST_SCRIPT, script_args=_post_args(), **warm)
        with RssSampler(pids) as sampler:
            for _ in range(max(1, cfg.intake_rounds)):
                b = bare_round()
                gc0 = _group_commit(stack.url("intake311"))
                s = run_wrk(f"{stack.url('intake311')}/requests.json", script=POST_SCRIPT,
                            script_args=_post_args(), server_pids=pids.values(), **load)
                gc1 = _group_commit(stack.url("intake311"))
                n = gc1[0] - gc0[0]
                if n > 0:  # what limits the write path: requests per transaction, and its time
                    s["group_commit"] = {"batches": int(n), "mean_batch": round((gc1[1] - gc0[1]) / n, 2),
                                         "mean_write_ms": round((gc1[2] - gc0[2]) / n * 1000, 3)}
                s["baseline"] = {k: b[k] for k in ("rps", "p50_ms", "p95_ms", "p99_ms", "server_cpu_cores", "wrk_cpu_cores")}
                s["ratio_rps_vs_baseline"] = ratio(s.get("ok_rps"), b["rps"])
                s["ratio_p99_vs_baseline"] = ratio(s.get("p99_ms"), b["p99_ms"], 2)
                rounds.append(s)
        res["rss_load_peak_mb"] = dict(sampler.peak)
        res["api_server_cpu_note"] = "server_cpu_cores sums the api and worker processes"
        drained, rows, pending = _wait_drained(url, timeout=60)
        res["stored_requests"] = rows
        res["outbox_drain_after_load_s"] = drained
        res["outbox_pending_after_drain_wait"] = pending
    finally:
        stack.stop_all()
    # the round with the median throughput ratio gives the figures; the p99 ratio is the median too
    by_ratio = sorted(rounds, key=lambda x: x["ratio_rps_vs_baseline"] or 0.0)
    res.update({k: v for k, v in by_ratio[len(by_ratio) // 2].items() if k not in ("ratio_p99_vs_baseline",)})
    res["ratio_p99_vs_baseline"] = statistics.median(x["ratio_p99_vs_baseline"] for x in rounds)
    res["rounds"] = rounds
    log(f"intake {backend}: {res.get('ok_rps')} req/s ({res['ratio_rps_vs_baseline']} of the bare endpoint in the "
        f"same round; rounds {[x['ratio_rps_vs_baseline'] for x in rounds]}), p99 {res.get('p99_ms')} ms "
        f"({res['ratio_p99_vs_baseline']}x), errors {res.get('error_total')}")
    return res

