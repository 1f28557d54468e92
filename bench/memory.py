"""Benchmark 6: resident memory of every service's api and worker, idle and under the intake load
(see ``bench.stackbench``; measured on the breach benchmark's stack when both run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import Databases
from bench.stackbench import run_stack
from citystat_common.localbroker import LocalBroker


def run(cfg: Any, dbs: Databases, broker: LocalBroker, folder: Path) -> dict[str, Any]:
    cached = getattr(cfg, "_memory", None)
    if cached is not None:
        return cached
    return run_stack(cfg, dbs, broker, folder, breach=False, memory=True).get("memory", {})
