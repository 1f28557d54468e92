"""Benchmark 5: the cost of one observation's evaluation with few vs many indicators registered.

Measured through the API: POST /indicators/EVALTPL/observations (one value for one period; the
value alternates 100/101 so every call is a change that is stored, revised and re-evaluated, and
the status stays green), sequentially, ``eval_repeats`` times, on PostgreSQL. EVALTPL has 24 monthly
observations of history and a fiscal-year target. The other indicators are clones of it
registered with bulk SQL (``bench.indsetup``); the ratio of the medians at the large and the small
count should stay near 1 (evaluation touches only the indicator observed)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import Databases, log, ratio, summary_ms
from bench.indsetup import ANALYST, clone_indicators, create_template, indicators_service
from citystat_common.localbroker import LocalBroker

CODE = "EVALTPL"


def _history() -> list[dict[str, Any]]:
    out = []
    for i in range(24):
        y, m = divmod(2024 * 12 + 9 + i, 12)  # 2024-10 .. 2026-09
        out.append({"indicator_code": CODE, "period": f"{y}-{m + 1:02d}", "value": 100 + (i % 3)})
    return out


def _measure(base: str, repeats: int) -> list[float]:
    times = []
    with httpx.Client(base_url=base, headers=ANALYST, timeout=30) as client:
        for i in range(repeats + 5):
            t0 = time.perf_counter()
            r = client.post(f"/indicators/{CODE}/observations", json={"period": "2026-10", "value": 100 + (i % 2)})
            dt = time.perf_counter() - t0
            if r.status_code != 200:
                raise RuntimeError(f"observation POST answered {r.status_code}: {r.text[:300]}")
            if i >= 5:
                times.append(dt)
    return times


def run(cfg: Any, dbs: Databases, broker: LocalBroker, folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"method": "HTTP POST /indicators/{code}/observations, sequential, PostgreSQL",
                           "small_indicators": cfg.eval_small, "large_indicators": cfg.eval_large}
    with indicators_service(dbs, broker, folder, "evalscale") as (url, base):
        create_template(base, CODE, frequency="monthly", targets=[{"fiscal_year": 2025, "value": 100}])
        r = httpx.post(f"{base}/observations/bulk", json=_history(), headers=ANALYST, timeout=60)
        if r.status_code != 200:
            raise RuntimeError(f"history bulk answered {r.status_code}: {r.text[:300]}")
        clone_indicators(url, CODE, "EV", 1, cfg.eval_small - 1)
        small = _measure(base, cfg.eval_repeats)
        log(f"evalscale: {cfg.eval_small} indicators measured; registering up to {cfg.eval_large:,}")
        t0 = time.monotonic()
        clone_indicators(url, CODE, "EV", cfg.eval_small, cfg.eval_large - 1)
        out["register_large_s"] = round(time.monotonic() - t0, 1)
        large = _measure(base, cfg.eval_repeats)
    out["small"] = summary_ms(small)
    out["large"] = summary_ms(large)
    out["ratio_median"] = ratio(out["large"]["p50_ms"], out["small"]["p50_ms"], 3)
    out["ratio_p95"] = ratio(out["large"]["p95_ms"], out["small"]["p95_ms"], 3)
    log(f"evalscale: {out['small']['p50_ms']} -> {out['large']['p50_ms']} ms ({out['ratio_median']}x)")
    return out
