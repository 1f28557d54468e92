"""``make bench``: run the CityStat benchmarks, print a short table, write bench/results/<timestamp>.json.

Every figure is a ratio against a baseline measured on the same machine in the same run:
  intake     Open311 POST /requests.json (full service, PostgreSQL and SQLite) vs a bare FastAPI endpoint
  query      GET /requests.json with filters at 10,000 vs 1,000,000 stored requests
  bulk       1,000,000 observations through POST /observations/bulk vs PostgreSQL COPY of the same rows
  breach     observation POST -> ticket readable through the escalation API vs the broker's own round trip
  evalscale  one observation's evaluation with 100 vs 100,000 indicators registered
  render     the dashboard and the department report with 100 vs 5,000 indicators registered
  memory     VmRSS of every service's api and worker, idle and under load
  history    1,000,000 rows of 311 history through the import vs a bare COPY of the same rows
  areas      intake throughput with 200 areas in 4 boundary layers vs without layers (PostgreSQL)
  pipeline   a burst of Open311 POSTs through all four services: derived-indicator lag, drain, end-to-end
             throughput vs intake alone, bytes and revision rows per request (PostgreSQL and SQLite)

Sizes and durations: flags below, or the matching BENCH_* environment variables (flags win).
``--quick`` is a 1-2 minute smoke run with small sizes. Everything runs on loopback, is bounded in
time and stops by itself; scratch PostgreSQL databases (bench_*) are dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import PG_ADMIN, Databases, log, postgres_available, wrk_available

ALL = ("intake", "query", "bulk", "breach", "evalscale", "render", "memory", "history", "areas", "pipeline")

# name, type, default, quick default, help
OPTIONS: list[tuple[str, type, Any, Any, str]] = [
    ("intake_duration", float, 20.0, 5.0, "seconds of measured wrk load per intake target"),
    ("intake_rounds", int, 3, 1, "rounds of (bare endpoint, service) back to back; the median round is reported"),
    ("intake_preload", int, 20_000, 5_000, "requests already stored (and ANALYZEd) before the intake load, as in a city's database"),
    ("naive_reference", int, 1, 1, "1: also measure the issue's naive insert+outbox endpoint on PostgreSQL"),
    ("warmup", float, 3.0, 2.0, "seconds of wrk warm-up before each measurement"),
    ("connections", int, 32, 16, "wrk connections (concurrent clients)"),
    ("wrk_threads", int, 1, 1, "wrk threads"),
    ("query_small", int, 10_000, 10_000, "stored requests for the small query measurement"),
    ("query_large", int, 1_000_000, 100_000, "stored requests for the large query measurement"),
    ("query_repeats", int, 60, 20, "requests per query shape and size"),
    ("query_large_sqlite", int, 1_000_000, 100_000, "cap on the large size for SQLite"),
    ("bulk_rows", int, 1_000_000, 50_000, "observations for the bulk ingest"),
    ("bulk_chunk", int, 10_000, 5_000, "observations per bulk API call"),
    ("bulk_clients", int, 4, 4, "bulk API calls in flight (a loader's concurrent clients, each posting the next chunk)"),
    ("bulk_web_workers", int, 2, 2, "uvicorn processes of the indicators api in the bulk ingest (as docker-compose deploys it); with more than 1 a one-process pass follows"),
    ("bulk_copy_repeats", int, 4, 2, "timed COPY baselines, half before and half after the API load (the median is the baseline)"),
    ("bulk_periods", int, 1000, 250, "daily periods per indicator in the bulk ingest"),
    ("breach_rate", float, 5.0, 5.0, "observations per second for breach-to-ticket"),
    ("breach_duration", float, 40.0, 10.0, "seconds of steady breach load"),
    ("eval_small", int, 100, 100, "indicators registered for the small evaluation measurement"),
    ("eval_large", int, 100_000, 10_000, "indicators registered for the large evaluation measurement"),
    ("eval_repeats", int, 150, 40, "timed single-observation evaluations per size"),
    ("render_small", int, 100, 100, "indicators registered for the small render measurement"),
    ("render_large", int, 5_000, 5_000, "indicators registered for the large render measurement"),
    ("render_repeats", int, 30, 10, "timed GETs of the department's dashboard and report per size"),
    ("render_board_repeats", int, 5, 3, "timed GETs of the whole board (every tile) per size"),
    ("memory_load", float, 10.0, 5.0, "seconds of intake load while sampling every service's memory"),
    ("history_rows", int, 1_000_000, 50_000, "311 requests in the history import (New York's open-data layout)"),
    ("history_chunk", int, 5000, 5000, "rows per committed chunk of the history import"),
    ("history_layers", int, 1, 1, "1: also import the history into a database with 4 boundary layers (tagging as of each row's date)"),
    ("areas_duration", float, 15.0, 5.0, "seconds of wrk load per side in the areas benchmark"),
    ("areas_rounds", int, 3, 1, "rounds of (without layers, with layers); the median ratio is reported"),
    ("pipeline_duration", float, 60.0, 10.0, "seconds of the Open311 burst through the whole pipeline"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
                   help="smoke run: small sizes, short durations (BENCH_QUICK=1)")
    p.add_argument("--only", default=os.environ.get("BENCH_ONLY", ",".join(ALL)),
                   help=f"comma list of benchmarks to run, from {','.join(ALL)} (BENCH_ONLY)")
    p.add_argument("--intake-backends", default=os.environ.get("BENCH_INTAKE_BACKENDS", "postgresql,sqlite"),
                   help="intake targets: postgresql,sqlite (BENCH_INTAKE_BACKENDS)")
    p.add_argument("--query-backends", default=os.environ.get("BENCH_QUERY_BACKENDS", "postgresql,sqlite"),
                   help="query targets: postgresql,sqlite (BENCH_QUERY_BACKENDS)")
    p.add_argument("--pipeline-backends", default=os.environ.get("BENCH_PIPELINE_BACKENDS", "postgresql,sqlite"),
                   help="pipeline targets: postgresql,sqlite (BENCH_PIPELINE_BACKENDS)")
    p.add_argument("--results", default=os.environ.get("BENCH_RESULTS", str(Path(__file__).parent / "results")),
                   help="folder for the JSON report (BENCH_RESULTS)")
    p.add_argument("--keep", action="store_true", help="keep the run folder (logs) after the run")
    for name, typ, default, _quick, help_ in OPTIONS:
        p.add_argument("--" + name.replace("_", "-"), type=typ, default=None,
                       help=f"{help_} (BENCH_{name.upper()}; default {default})")
    args = p.parse_args(argv)
    for name, typ, default, quick, _ in OPTIONS:
        if getattr(args, name) is None:
            env = os.environ.get(f"BENCH_{name.upper()}")
            setattr(args, name, typ(env) if env else (quick if args.quick else default))
    args.only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(args.only) - set(ALL)
    if unknown:
        p.error(f"unknown benchmarks {sorted(unknown)}; choose from {', '.join(ALL)}")
    args.query_backends = [x.strip() for x in args.query_backends.split(",") if x.strip()]
    args.intake_backends = [x.strip() for x in args.intake_backends.split(",") if x.strip()]
    args.pipeline_backends = [x.strip() for x in args.pipeline_backends.split(",") if x.strip()]
    return args


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(),
                            "cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        info["loadavg_at_start"] = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from citystat_common.localbroker import LocalBroker

    if not postgres_available():
        log(f"PostgreSQL is not reachable at {PG_ADMIN} (BENCH_POSTGRES_URL; default: the local server's "
            "Unix socket, else 127.0.0.1:5432): every benchmark here needs it")
        return 2
    if any(b in args.only for b in ("intake", "memory", "pipeline")) and not wrk_available():
        log("wrk is not installed (Debian: apt-get install wrk); `make bench` installs it")
        return 2
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    report: dict[str, Any] = {"started": started, "machine": machine(), "postgres_url": PG_ADMIN,
                              "config": {k: v for k, v in vars(args).items() if k not in ("results",)},
                              "results": {}, "errors": {}}
    folder = Path(tempfile.mkdtemp(prefix="citystat-bench-run-"))
    dbs = Databases()
    t_all = time.monotonic()
    try:
        for name in ALL:
            if name not in args.only:
                continue
            t0 = time.monotonic()
            # A fresh broker per benchmark: events left by one (thousands of 311.requests from the
            # intake load, status changes from the bulk ingest) must not become the next one's load.
            broker = LocalBroker(log_path=folder / f"broker-{name}.log").start()
            try:
                module = __import__(f"bench.{name}", fromlist=["run"])
                report["results"][name] = module.run(args, dbs, broker, folder)
            except Exception as exc:  # noqa: BLE001 - one failed benchmark must not lose the others
                log(f"{name} FAILED: {exc!r}")
                report["errors"][name] = traceback.format_exc()
            finally:
                broker.close()
            report["results"].setdefault(name, {})["elapsed_s"] = round(time.monotonic() - t0, 1)
    finally:
        dbs.drop_all()
        if not args.keep:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
        else:
            log(f"run folder kept: {folder}")
    report["elapsed_s"] = round(time.monotonic() - t_all, 1)
    from bench.report import evaluate_targets, table

    report["targets"] = evaluate_targets(report["results"])
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{started}.json"
    path.write_text(json.dumps(report, indent=2, default=str))
    print(table(report))
    print(f"\nreport: {path}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
