"""Shared helpers: PostgreSQL scratch databases, a process stack whose api runs through the bench
launcher, resident memory and CPU from /proc, percentiles, wrk."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from citystat_common.localbroker import free_port
from citystat_common.migrate import _run_coroutine, upgrade
from citystat_common.stack import ProcessStack

ROOT = Path(__file__).resolve().parent
PG_SOCKET_DIR = "/var/run/postgresql"


def default_postgres_url() -> str:
    """The PostgreSQL server on this machine, through its Unix socket when it has one (as a
    single-machine install connects): the services' round trips then cost fewer system calls
    than over loopback TCP (intake +3.6% in alternating rounds, docs/performance.md)."""
    if os.path.exists(f"{PG_SOCKET_DIR}/.s.PGSQL.5432"):
        return f"postgresql+asyncpg://postgres@/postgres?host={PG_SOCKET_DIR}"
    return "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL") or default_postgres_url()
WRK = os.environ.get("BENCH_WRK", "wrk")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- PostgreSQL scratch databases ------------------------------------------------------------


def asyncpg_dsn(url: str) -> str:
    return re.sub(r"^postgresql\+asyncpg://", "postgresql://", url)


def with_db(url: str, name: str) -> str:
    """``url`` with another database; the query (``?host=/socket/dir``) kept as written, unescaped
    (Alembic's config file syntax takes no ``%``)."""
    m = re.match(r"^([^:]+://[^/]*)/[^?]*(\?.*)?$", url)
    if m is None:
        raise ValueError(f"not a database URL: {url}")
    return f"{m[1]}/{name}{m[2] or ''}"


class Databases:
    """Creates ``bench_*`` databases on the PostgreSQL server and drops them all at the end."""

    def __init__(self, admin_url: str = PG_ADMIN):
        self.admin = admin_url
        self.created: list[str] = []
        self.tmp = tempfile.TemporaryDirectory(prefix="citystat-bench-")

    def pg(self, label: str) -> str:
        name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
        asyncio.run(self._exec(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return with_db(self.admin, name)

    def sqlite(self, label: str) -> str:
        return f"sqlite+aiosqlite:///{self.tmp.name}/{label}-{uuid.uuid4().hex[:8]}.db"

    async def _exec(self, *stmts: str) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(self.admin))
        try:
            for s in stmts:
                await conn.execute(s)
        finally:
            await conn.close()

    def drop_all(self) -> None:
        for name in self.created:
            try:
                asyncio.run(self._exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except Exception as exc:  # noqa: BLE001 - best effort at the end of a run
                log(f"could not drop {name}: {exc!r}")
        self.created.clear()
        self.tmp.cleanup()


def postgres_available() -> bool:
    async def probe() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(PG_ADMIN), timeout=3)
        await conn.close()

    try:
        asyncio.run(probe())
        return True
    except Exception:  # noqa: BLE001
        return False


# --- processes -----------------------------------------------------------------------------------


class BenchStack(ProcessStack):
    """ProcessStack whose api processes run through ``bench.launcher`` (the same uvicorn kwargs as
    the bare baseline); workers are the services' own ``<svc>.worker run``."""

    def __init__(self, *args: Any, launcher_api: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.launcher_api = launcher_api

    def start(self, name: str, *, workers: int = 1) -> None:
        svc = self.services[name]
        (self.folder / "metrics" / name).mkdir(parents=True, exist_ok=True)
        if svc.api is None or svc.api.poll() is not None:
            if self.launcher_api:
                cmd = [sys.executable, "-m", "bench.launcher", f"{name}.main:create_app", str(svc.port)]
            else:
                cmd = [sys.executable, "-c", f"from {name}.main import run; run()"]
            svc.api = self._spawn(name, "api", cmd)
        while len([w for w in svc.workers if w.poll() is None]) < workers:
            svc.workers.append(self._spawn(name, f"worker{len(svc.workers)}", [sys.executable, "-m", f"{name}.worker", "run"]))

    def env(self, name: str) -> dict[str, str]:
        env = super().env(name)
        env["PYTHONPATH"] = str(ROOT.parent) + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def pids(self, name: str) -> dict[str, int]:
        svc = self.services[name]
        out = {"api": svc.api.pid} if svc.api else {}
        for i, w in enumerate(svc.workers):
            out["worker" if i == 0 else f"worker{i}"] = w.pid
        return out


class BareServer:
    """The bare baseline app under the same launcher."""

    def __init__(self, folder: Path, factory: str = "bench.bareapp:create_app", env: dict[str, str] | None = None):
        self.port = free_port()
        self.folder = folder
        self.factory = factory
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> BareServer:
        env = dict(os.environ, PYTHONPATH=str(ROOT.parent), **self.extra_env)
        logf = open(self.folder / "bare.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.launcher", self.factory, str(self.port)],
            env=env, stdout=logf, stderr=subprocess.STDOUT, cwd=self.folder,
        )
        wait_http(f"{self.url}/healthz", self.proc)
        return self

    def __exit__(self, *exc: object) -> None:
        stop_proc(self.proc)


def stop_proc(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not up after {timeout}s")


# --- /proc -----------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its children (uvicorn's workers under its supervisor), read
    from /proc like ``cpu_seconds``."""
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                    kids.append(int(entry.name))
            except (OSError, ValueError):
                continue  # gone meanwhile
    return cpu_seconds(pid) + sum(cpu_seconds(k) for k in kids)


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return 0.0


class RssSampler:
    """Samples VmRSS of some processes every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5):
        self.pids = pids
        self.interval = interval
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                v = rss_mb(pid)
                if v is not None and v > self.peak.get(name, 0):
                    self.peak[name] = v
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- statistics -----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def histogram_totals(base: str, metric: str, labels: dict[str, str]) -> tuple[float, float] | None:
    """A histogram's (count, sum) so far in a service's /metrics, over the series whose labels
    include ``labels`` (every process's, in multiprocess mode); None when /metrics is unreachable."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = httpx.get(f"{base}/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    count = total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != metric:
            continue
        for sample in family.samples:
            if labels.items() <= sample.labels.items():
                if sample.name == f"{metric}_count":
                    count += sample.value
                elif sample.name == f"{metric}_sum":
                    total += sample.value
    return count, total


def summary_ms(values_s: Iterable[float]) -> dict[str, float]:
    v = [x * 1000 for x in values_s]
    if not v:
        return {"n": 0}
    return {
        "n": len(v), "p50_ms": round(percentile(v, 50), 3), "p95_ms": round(percentile(v, 95), 3),
        "p99_ms": round(percentile(v, 99), 3), "mean_ms": round(statistics.fmean(v), 3), "max_ms": round(max(v), 3),
    }


def ratio(a: float | None, b: float | None, digits: int = 3) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, digits)


# --- wrk ------------------------------------------------------------------------------------------


def wrk_available() -> bool:
    try:
        subprocess.run([WRK, "-v"], capture_output=True, timeout=5)
        return True
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_wrk(url: str, *, duration: float, connections: int, threads: int, script: Path | None = None,
            script_args: list[str] | None = None, server_pids: Iterable[int] = ()) -> dict[str, Any]:
    """Run wrk; returns requests/s, latency percentiles (ms), errors, and the CPU wrk and the
    server used (cores), which shows whether the load generator is the bottleneck."""
    cmd = [WRK, f"-t{threads}", f"-c{connections}", f"-d{max(1, int(round(duration)))}s", "--timeout", "10s"]
    script = script or ROOT / "wrk_report.lua"
    cmd += ["-s", str(script), url]
    if script_args:
        cmd += ["--", *script_args]
    pids = list(server_pids)
    cpu0 = {p: cpu_seconds(p) for p in pids}
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no report: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    doc = json.loads(line[len("WRKJSON "):])
    secs = doc["duration_us"] / 1e6
    bad = doc["errors_status"] + doc["errors_connect"] + doc["errors_read"] + doc["errors_write"] + doc["errors_timeout"]
    return {
        "requests": doc["requests"],
        "duration_s": round(secs, 2),
        "rps": round(doc["requests"] / secs, 1),
        "ok_rps": round((doc["requests"] - doc["errors_status"]) / secs, 1),
        "p50_ms": doc["p50"] / 1000, "p95_ms": doc["p95"] / 1000, "p99_ms": doc["p99"] / 1000,
        "max_ms": doc["max"] / 1000, "mean_ms": round(doc["mean"] / 1000, 3),
        "errors": {k[7:]: v for k, v in doc.items() if k.startswith("errors_")},
        "error_total": bad,
        "connections": connections, "threads": threads,
        "wrk_cpu_cores": round(((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) / wall, 2),
        "server_cpu_cores": round(sum(cpu_seconds(p) - cpu0[p] for p in pids) / wall, 2) if pids else None,
    }


def migrate(name: str, url: str) -> None:
    """``alembic upgrade head`` for a service's bench database; intake311's with the demo city's
    catalog, which migrations no longer seed (intake311 migration 0021): the benchmarks post to it."""
    upgrade(name, url)
    if name == "intake311":
        from intake311.demo_catalog import load_demo_catalog

        _run_coroutine(load_demo_catalog(url))
