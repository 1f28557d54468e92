"""Benchmark 4: breach to ticket (see ``bench.stackbench``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import Databases
from bench.stackbench import run_stack
from citystat_common.localbroker import LocalBroker


def run(cfg: Any, dbs: Databases, broker: LocalBroker, folder: Path) -> dict[str, Any]:
    res = run_stack(cfg, dbs, broker, folder, breach=True, memory="memory" in cfg.only)
    if "memory" in res:
        cfg._memory = res["memory"]
    return res.get("breach", {})
