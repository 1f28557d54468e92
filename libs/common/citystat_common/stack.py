"""The whole system as separate processes, as ``make run`` starts it: for end-to-end tests,
fault tests and benchmarks. Each service runs its api and worker processes against its own
database; logs go to files in the stack's folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from citystat_common.auth import hash_key
from citystat_common.localbroker import LocalBroker, free_port
from citystat_common.testing import TEST_KEY_ENTRIES, TEST_KEYS

ALL_SERVICES = ("directory", "intake311", "indicators", "escalation")


def available_services() -> list[str]:
    """Services whose package has an app factory and a worker (all four once built)."""
    import importlib.util

    return [
        name for name in ALL_SERVICES
        if importlib.util.find_spec(f"{name}.main") and importlib.util.find_spec(f"{name}.worker")
    ]


@dataclass
class ServiceProcs:
    name: str
    port: int
    database_url: str
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)


class ProcessStack:
    def __init__(
        self,
        folder: Path,
        database_urls: dict[str, str],
        broker: LocalBroker,
        extra_env: dict[str, str] | None = None,
    ):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.broker = broker
        self.extra_env = extra_env or {}
        self.services = {name: ServiceProcs(name, free_port(), url) for name, url in database_urls.items()}
        keys = [{k: v for k, v in e.items() if k != "key"} | {"sha256": hash_key(str(e["key"]))} for e in TEST_KEY_ENTRIES]
        self.keys_file = self.folder / "api-keys.json"
        self.keys_file.write_text(json.dumps({"keys": keys}))

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.services[name].port}"

    def env(self, name: str) -> dict[str, str]:
        prefix = name.upper() + "_"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.update(
            KAFKA_BOOTSTRAP=self.broker.bootstrap,
            API_KEYS_FILE=str(self.keys_file),
            LOG_FORMAT="json",
            PROMETHEUS_MULTIPROC_DIR=str(self.folder / "metrics" / name),
            **{f"{prefix}DATABASE_URL": self.services[name].database_url, f"{prefix}PORT": str(self.services[name].port)},
        )
        if "directory" in self.services:
            env[f"{prefix}DIRECTORY_URL"] = self.url("directory")
        if name == "indicators" and "intake311" in self.services:
            # the history backfill reads imported batches from intake311 (scope staff)
            env["INDICATORS_INTAKE311_URL"] = self.url("intake311")
            env["INDICATORS_INTAKE311_API_KEY"] = TEST_KEYS["staff"]
        if name == "indicators" and "escalation" in self.services:
            env["INDICATORS_ESCALATION_URL"] = self.url("escalation")  # where tiles link a ticket's page
        env.update({k.replace("{SVC}", name.upper()): v for k, v in self.extra_env.items()})
        return env

    def _spawn(self, name: str, role: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"{name}-{role}.log", "ab")  # noqa: SIM115 - kept open for the process's life
        return subprocess.Popen(args, env=self.env(name), stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)

    def start(self, name: str, *, workers: int = 1) -> None:
        svc = self.services[name]
        (self.folder / "metrics" / name).mkdir(parents=True, exist_ok=True)
        if svc.api is None or svc.api.poll() is not None:
            svc.api = self._spawn(name, "api", [sys.executable, "-c", f"from {name}.main import run; run()"])
        while len([w for w in svc.workers if w.poll() is None]) < workers:
            svc.workers.append(self._spawn(name, f"worker{len(svc.workers)}", [sys.executable, "-m", f"{name}.worker", "run"]))

    # Four apis importing and migrating at once on a shared 2-core machine (load 10-20) have taken
    # more than 90 s to answer /healthz: a slow start is not what the tests check.
    HEALTH_TIMEOUT = 180.0

    def start_all(self, *, timeout: float = HEALTH_TIMEOUT) -> None:
        for name in self.services:
            self.start(name)
        self.wait_healthy(timeout=timeout)

    def wait_healthy(self, names: list[str] | None = None, timeout: float = HEALTH_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        for name in names or list(self.services):
            while True:
                svc = self.services[name]
                if svc.api is not None and svc.api.poll() is not None:
                    raise RuntimeError(f"{name} api exited with {svc.api.returncode}; see {self.folder}/{name}-api.log")
                try:
                    if httpx.get(f"{self.url(name)}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not healthy after {timeout}s; see {self.folder}/{name}-api.log")
                time.sleep(0.2)

    def stop_worker(self, name: str, index: int = 0, *, kill: bool = False) -> None:
        _stop(self.services[name].workers[index], kill=kill)

    def stop(self, name: str, *, kill: bool = False) -> None:
        svc = self.services[name]
        for proc in [svc.api, *svc.workers]:
            if proc is not None:
                _stop(proc, kill=kill)
        svc.api, svc.workers = None, []

    def stop_all(self) -> None:
        # Every process is told at once, then awaited: one by one, each worker's graceful leave
        # (consumer group, relay) was waited out in turn (~7 s per stack of four services).
        procs = [p for svc in self.services.values() for p in (svc.api, *svc.workers) if p is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            _wait_or_kill(proc)
        for svc in self.services.values():
            svc.api, svc.workers = None, []

    def logs(self, name: str) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.folder.glob(f"{name}-*.log")))


def _stop(proc: subprocess.Popen[bytes], *, kill: bool) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    _wait_or_kill(proc)


def _wait_or_kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
