"""Profile a service under the intake load with py-spy (not part of ``make bench``):

    python -m bench.profile [--backend postgresql|sqlite] [--seconds 10] [--pyspy PATH] [--worker]
    python -m bench.profile --target bulk [--seconds 10]   # indicators api under the bulk ingest

Starts intake311 (api + worker) like the intake benchmark, drives it with wrk, samples the api
(or worker) process with ``py-spy record --format raw`` and prints the functions with the
largest inclusive and self share of samples. py-spy is not a project dependency: install it
anywhere (``pipx install py-spy`` or a scratch venv) and point --pyspy / BENCH_PYSPY at it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import BenchStack, Databases, migrate, run_wrk
from bench.intake import POST_SCRIPT, _check_post, _post_args
from bench.query import _load
from citystat_common.localbroker import LocalBroker
from citystat_common.migrate import upgrade


def summarize(raw: Path, top: int = 40, filter_idle: bool = True) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        if filter_idle and frames and ("select (selectors.py" in frames[-1] or "run_forever" in frames[-1]
                                       or "_run_once" in frames[-1] and len(frames) < 6):
            continue
        total += n
        for f in set(frames):
            inclusive[f] += n
        self_[frames[-1]] += n
    out = [f"{total} busy samples", "", "inclusive:"]
    out += [f"{100 * c / total:5.1f}%  {f}" for f, c in inclusive.most_common(top)]
    out += ["", "self:"]
    out += [f"{100 * c / total:5.1f}%  {f}" for f, c in self_.most_common(top)]
    return "\n".join(out)


@contextlib.contextmanager
def _scratch() -> Iterator[tuple[Path, Databases, LocalBroker]]:
    """A folder, bench databases and a broker, all removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="citystat-prof-"))
    dbs = Databases()
    broker = LocalBroker().start()
    try:
        yield folder, dbs, broker
    finally:
        broker.close()
        dbs.drop_all()
        shutil.rmtree(folder, ignore_errors=True)


def _pyspy(args: argparse.Namespace, pid: int, raw: Path) -> list[str]:
    # --gil: samples of the thread running Python only, so waiting on the database is not "busy"
    return [args.pyspy, "record", "--pid", str(pid), "--duration", str(int(args.seconds)), "--rate", "200",
            "--format", "raw", "--output", str(raw), "--nonblocking", "--gil"]


def profile_bulk(args: argparse.Namespace) -> None:
    import httpx
    import orjson

    from bench.bulk import FIRST_DAY, _rows
    from bench.indsetup import ANALYST, clone_indicators, create_template, seed_department

    with _scratch() as (folder, dbs, broker):
        url = dbs.pg("prof")
        upgrade("indicators", url)
        seed_department(url)
        stack = BenchStack(folder, {"indicators": url}, broker)
        try:
            stack.start("indicators")
            stack.wait_healthy()
            base = stack.url("indicators")
            create_template(base, "BULKTPL", frequency="daily", targets=[{"period": FIRST_DAY.isoformat(), "value": 100}])
            codes = clone_indicators(url, "BULKTPL", "BULK", 1, 400)
            rows = _rows(codes, 1000, 400_000)
            chunks = [orjson.dumps([{"indicator_code": c, "period": d.isoformat(), "value": v} for c, d, v in rows[i:i + 10_000]])
                      for i in range(0, len(rows), 10_000)]
            pid = stack.pids("indicators")["api"]
            raw = Path(args.out or folder / "raw.txt")
            spy = subprocess.Popen(_pyspy(args, pid, raw), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with httpx.Client(base_url=base, headers=ANALYST | {"Content-Type": "application/json"}, timeout=600) as c:
                for body in chunks:
                    c.post("/observations/bulk", content=body)
                    if spy.poll() is not None:
                        break
            spy.wait()
            print(summarize(raw))
        finally:
            stack.stop_all()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--backend", default="postgresql")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--worker", action="store_true", help="profile the worker process instead of the api")
    p.add_argument("--pyspy", default=os.environ.get("BENCH_PYSPY") or shutil.which("py-spy") or "py-spy")
    p.add_argument("--out", default=None, help="where to keep the raw samples")
    p.add_argument("--target", default="intake", choices=["intake", "bulk"])
    args = p.parse_args()
    if args.target == "bulk":
        profile_bulk(args)
        return
    with _scratch() as (folder, dbs, broker):
        url = dbs.pg("prof") if args.backend == "postgresql" else dbs.sqlite("prof")
        migrate("intake311", url)
        _load(args.backend, url, 1, 20_000)  # as the intake benchmark: a database with history and statistics
        stack = BenchStack(folder, {"intake311": url}, broker, extra_env={"INTAKE311_RATE_LIMIT_PER_MINUTE": "0"})
        try:
            stack.start("intake311")
            stack.wait_healthy()
            _check_post(stack.url("intake311"))
            pid = stack.pids("intake311")["worker" if args.worker else "api"]
            raw = Path(args.out or folder / "raw.txt")
            load = threading.Thread(target=run_wrk, args=(f"{stack.url('intake311')}/requests.json",), kwargs=dict(
                duration=args.seconds + 4, connections=args.connections, threads=1, script=POST_SCRIPT,
                script_args=_post_args()))
            load.start()
            time.sleep(2)
            subprocess.run(_pyspy(args, pid, raw), check=True, capture_output=True)
            load.join()
            print(summarize(raw))
        finally:
            stack.stop_all()


if __name__ == "__main__":
    main()
