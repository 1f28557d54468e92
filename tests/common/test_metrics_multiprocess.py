"""Multiprocess metrics (make run: api and worker write one folder per service): the gauges of a
process killed -9 are not read for ever. Real processes write the files; the scrape reads them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from citystat_common.metrics import remove_dead_process_gauges, render_metrics

WRITER = """
import sys
from citystat_common import metrics
metrics.OUTBOX_BACKLOG.labels("svc").set(float(sys.argv[1]))
metrics.BROKER_UP.labels("svc").set(1)
metrics.EVENTS_PUBLISHED.labels("svc", "t").inc()
print("ready", flush=True)
sys.stdin.read()  # stays alive until the test closes stdin or kills it
"""


def _writer(folder, backlog: int) -> subprocess.Popen[str]:
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(folder))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(backlog)], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _scrape(folder, monkeypatch) -> str:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    return render_metrics()[0].decode()


def _value(text: str, name: str) -> float | None:
    line = next((ln for ln in text.splitlines() if ln.startswith(name + "{")), None)
    return None if line is None else float(line.rsplit(" ", 1)[1])


def test_a_killed_process_gauges_are_dropped_its_counters_kept(tmp_path, monkeypatch):
    dead = _writer(tmp_path, backlog=7)
    alive = _writer(tmp_path, backlog=2)
    try:
        text = _scrape(tmp_path, monkeypatch)
        assert _value(text, "citystat_outbox_backlog") == 7  # livemax over both live processes
        dead.send_signal(signal.SIGKILL)  # no exit hook runs
        dead.wait()
        text = _scrape(tmp_path, monkeypatch)
        assert _value(text, "citystat_outbox_backlog") == 2  # only the live process's value
        assert _value(text, "citystat_events_published_total") == 2  # totals keep the dead one's count
        alive.send_signal(signal.SIGKILL)
        alive.wait()
        text = _scrape(tmp_path, monkeypatch)
        assert _value(text, "citystat_outbox_backlog") is None and _value(text, "citystat_broker_up") is None
    finally:
        for p in (dead, alive):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_an_unreaped_killed_process_counts_as_dead(tmp_path):
    zombie = _writer(tmp_path, backlog=1)
    zombie.send_signal(signal.SIGKILL)
    # not waited for: a zombie, whose pid still answers kill(pid, 0)
    import time

    for _ in range(100):
        with open(f"/proc/{zombie.pid}/stat") as f:
            if f.read().rpartition(")")[2].split()[0] == "Z":
                break
        time.sleep(0.02)
    assert remove_dead_process_gauges(str(tmp_path)) == [zombie.pid]
    zombie.wait()
