"""Benchmark: the pipeline keeps up with the front door (issue 19).

All four services as deployed (api through the launcher, one worker each, the run's broker), per
backend (PostgreSQL, SQLite). A burst of Open311 POSTs at intake's own maximum rate (wrk, as the
intake benchmark) for ``pipeline_duration`` seconds. Throughout the burst and after it a sampler
reads, every ``SAMPLE_S``, how many requests the derived indicators count (the sum of the current
period's ``311.<DEPT>.opened``), straight from the indicators database.

- intake alone: the requests intake accepted per second of the burst (wrk's 2xx rate).
- lag of a request: from its acceptance (``requested_datetime``, stamped by intake as it takes the
  request, a few ms before the 201) to the first sample whose derived count includes it. The
  consumer applies a partition in order and requests are spread over partitions by number, so the
  k-th request accepted is taken as counted once the count reaches k (exact when the partitions keep
  pace with each other; off by at most a batch otherwise).
- drain: from the end of the burst until the derived count includes every accepted request.
- end-to-end sustained throughput: accepted requests / (burst + drain), against intake alone.
- storage: bytes the four databases grew by per accepted request; revision rows per request.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import BenchStack, Databases, asyncpg_dsn, log, migrate, ratio, run_wrk, summary_ms
from bench.intake import POST_SCRIPT, _check_post, _post_args
from bench.stackbench import import_city
from citystat_common.db import create_engine
from citystat_common.localbroker import LocalBroker
from citystat_common.stack import ALL_SERVICES

SAMPLE_S = 0.25
DRAIN_TIMEOUT_S = 600.0

# The current period's department-wide "opened" counts: what the dashboard's 311 tiles show.
OPENED_SQL = sa.text(
    "SELECT coalesce(sum(o.value), 0) FROM observations o JOIN indicators i ON i.id = o.indicator_id "
    "WHERE i.derived_from = '311' AND i.code LIKE '311.%.opened' AND i.code NOT LIKE '311.%.%.opened' "
    "AND o.period_start = (SELECT max(period_start) FROM observations o2 WHERE o2.indicator_id = o.indicator_id)"
)


class Sampler:
    """Reads the derived count every SAMPLE_S in a thread of its own (its own event loop)."""

    def __init__(self, ind_url: str):
        self.url = ind_url
        self.samples: list[tuple[float, int]] = []  # (wall clock, derived count)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        engine = create_engine(self.url)
        try:
            while not self._stop.is_set():
                t0 = time.time()
                try:
                    async with engine.connect() as conn:
                        n = int((await conn.execute(OPENED_SQL)).scalar_one())
                    self.samples.append((time.time(), n))
                except Exception as exc:  # noqa: BLE001 - a busy SQLite file: the next sample
                    log(f"pipeline: sample failed: {exc!r}")
                await asyncio.sleep(max(0.0, SAMPLE_S - (time.time() - t0)))
        finally:
            await engine.dispose()

    def latest(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


async def _scalar(url: str, sql: str) -> Any:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(sa.text(sql))).scalar_one()
    finally:
        await engine.dispose()


async def _accepted_times(url: str) -> list[float]:
    from intake311.models import ServiceRequest

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.select(ServiceRequest.requested_datetime)
                                      .where(ServiceRequest.pending.is_(False)).order_by(ServiceRequest.requested_datetime))
            return [r[0].replace(tzinfo=r[0].tzinfo or UTC).timestamp() for r in rows]
    finally:
        await engine.dispose()


async def _sizes(urls: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, url in urls.items():
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[1]
            out[name] = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
        else:
            import asyncpg

            conn = await asyncpg.connect(asyncpg_dsn(url))
            try:
                out[name] = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
            finally:
                await conn.close()
    return out


async def _stages(intake_url: str, ind_url: str, since: float) -> dict[str, Any]:
    """Where a request's time goes, from the databases' own timestamps (same host clock): accepted
    (outbox row written) -> published by intake's relay -> applied by the indicators consumer."""
    from indicators.models import PLUMBING as IND
    from intake311.models import PLUMBING as INTAKE

    moment = datetime.fromtimestamp(since, UTC)
    engines = create_engine(intake_url), create_engine(ind_url)
    try:
        async with engines[0].connect() as conn:
            ob = INTAKE.outbox
            sent = {r.event_id: (r.created_at, r.sent_at) for r in await conn.execute(
                sa.select(ob.c.event_id, ob.c.created_at, ob.c.sent_at).where(
                    ob.c.event_type == "intake311.request.created", ob.c.created_at >= moment))}
        async with engines[1].connect() as conn:
            ib = IND.inbox
            applied = {r.event_id: r.processed_at for r in await conn.execute(
                sa.select(ib.c.event_id, ib.c.processed_at).where(ib.c.processed_at >= moment))}
    finally:
        for e in engines:
            await e.dispose()
    relay, consume = [], []
    for event_id, (created, published) in sent.items():
        done = applied.get(event_id)
        if published is None or done is None:
            continue
        relay.append((published - created).total_seconds())
        consume.append((done - published).total_seconds())
    return {"accepted_to_published": summary_ms(relay), "published_to_applied": summary_ms(consume)}


def _lags(accepted: list[float], samples: list[tuple[float, int]], base: int) -> list[float]:
    """Each accepted request's lag: the first sample counting it (the k-th accepted once count >= k)."""
    lags: list[float] = []
    k = 0
    for t, count in samples:
        reached = min(count - base, len(accepted))
        while k < reached:
            lags.append(max(0.0, t - accepted[k]))
            k += 1
    return lags


def _backend(cfg: Any, dbs: Databases, broker: LocalBroker, folder: Path, backend: str) -> dict[str, Any]:
    urls = {name: (dbs.pg(f"pipe_{name}") if backend == "postgresql" else dbs.sqlite(f"pipe-{name}"))
            for name in ALL_SERVICES}
    for name, url in urls.items():
        migrate(name, url)
    stack = BenchStack(folder / f"pipeline-{backend}", urls, broker, extra_env={"{SVC}_RATE_LIMIT_PER_MINUTE": "0"})
    res: dict[str, Any] = {"duration_s": cfg.pipeline_duration, "connections": cfg.connections,
                           "sample_interval_s": SAMPLE_S}
    try:
        stack.start_all(timeout=300)  # a shared machine can take minutes to start eight processes
        import_city(stack)
        intake = stack.url("intake311")
        _check_post(intake)  # one request through the whole path: the derived indicators exist before the burst
        with Sampler(urls["indicators"]) as sampler:
            deadline = time.monotonic() + 120
            while sampler.latest() < 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            base = sampler.latest()
            before = len(asyncio.run(_accepted_times(urls["intake311"])))  # the probe: counted in base
            sizes0 = asyncio.run(_sizes(urls))
            t_start = time.time()
            load = run_wrk(f"{intake}/requests.json", duration=cfg.pipeline_duration, connections=cfg.connections,
                           threads=cfg.wrk_threads, script=POST_SCRIPT, script_args=_post_args(),
                           server_pids=[p for n in stack.services for p in stack.pids(n).values()])
            t_end = time.time()
            accepted_all = asyncio.run(_accepted_times(urls["intake311"]))
            accepted = accepted_all[before:]  # the burst's (accepted after the probe, in order)
            total = base + len(accepted)
            log(f"pipeline {backend}: {len(accepted)} accepted in {t_end - t_start:.1f} s ({load['ok_rps']} req/s); "
                f"derived count {sampler.latest() - base} at the end of the burst")
            drained_at = None
            while time.time() - t_end < DRAIN_TIMEOUT_S:
                if sampler.latest() >= total:
                    drained_at = sampler.samples[-1][0]
                    break
                time.sleep(SAMPLE_S)
            samples = list(sampler.samples)
        sizes1 = asyncio.run(_sizes(urls))
        revisions = int(asyncio.run(_scalar(urls["indicators"], "SELECT count(*) FROM observation_revisions")))
        stages = asyncio.run(_stages(urls["intake311"], urls["indicators"], t_start))
        lags = _lags(accepted, [s for s in samples if s[0] >= t_start], base)
        n = len(accepted)
        res.update({
            "intake_alone": {k: load[k] for k in ("ok_rps", "rps", "p50_ms", "p99_ms", "error_total", "server_cpu_cores")},
            "accepted": n,
            "derived_at_burst_end": max((c for t, c in samples if t <= t_end), default=base) - base,
            "drain_s": round(drained_at - t_end, 2) if drained_at else None,
            "drained": drained_at is not None,
            "lag": summary_ms(lags),
            "lag_counted": len(lags),
            "stages": stages,
            "bytes_per_request": {k: round((sizes1[k] - sizes0[k]) / n, 1) if n else None for k in urls},
            "revision_rows": revisions,
            "revision_rows_per_request": ratio(revisions, n, 4) if n else None,
        })
        res["bytes_per_request"]["all"] = round(sum(sizes1[k] - sizes0[k] for k in urls) / n, 1) if n else None
        if drained_at is not None and n:
            res["end_to_end_rps"] = round(n / (drained_at - t_start), 1)
            res["ratio_end_to_end_vs_intake"] = ratio(res["end_to_end_rps"], load["ok_rps"])
        log(f"pipeline {backend}: drain {res['drain_s']} s, end to end {res.get('end_to_end_rps')} req/s "
            f"({res.get('ratio_end_to_end_vs_intake')} of intake alone), lag p50/p99 "
            f"{res['lag'].get('p50_ms')}/{res['lag'].get('p99_ms')} ms, {res['revision_rows_per_request']} revision rows "
            f"and {res['bytes_per_request']['all']} bytes per request")
    finally:
        stack.stop_all()
    return res


def run(cfg: Any, dbs: Databases, broker: LocalBroker, folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"started": datetime.now(UTC).isoformat()}
    for backend in cfg.pipeline_backends:
        try:
            out[backend] = _backend(cfg, dbs, broker, folder, backend)
        except Exception as exc:
            if not out.get("postgresql") and not out.get("sqlite"):
                raise
            log(f"pipeline {backend} FAILED: {exc!r}")  # keep the other backend's figures
            out[backend] = {"error": repr(exc)}
    return out
