"""Benchmark 7: the pages leadership reads, rendered with few vs many indicators registered.

Through the API on PostgreSQL, sequential GETs, in one run:

- ``department``: ``GET /dashboard?department=STREETS`` and ``GET /dashboard/departments/STREETS/report``
  (the same 20 STREETS indicators on both sizes) with ``render_small`` vs ``render_large`` indicators
  registered across the city. A department's page reads its own indicators only, so the ratio of
  the medians should stay near 1 (target <= 3x).
- ``board``: ``GET /dashboard`` with every tile (``render_small`` vs ``render_large`` tiles): the
  time per tile at the large size over the time per tile at the small size (target <= 3x: batched
  reads, no query per tile, nothing quadratic in the number of tiles).

Every indicator has 24 monthly figures (the template's, copied with bulk SQL, as ``bench.indsetup``
copies indicators) and a fiscal-year target, so sparklines, years to date and trends all have work."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.common import Databases, asyncpg_dsn, log, ratio, summary_ms
from bench.indsetup import ANALYST, clone_indicators, copy_rows, create_template, indicators_service
from citystat_common.localbroker import LocalBroker

DEPT_INDICATORS = 20
PAGES = {"dashboard": "/dashboard?department=STREETS&refresh=0", "report": "/dashboard/departments/STREETS/report"}


def _history(code: str) -> list[dict[str, Any]]:
    """The 24 months up to the last complete one, so the figures are current (not owed)."""
    today = datetime.now(UTC).date()
    out = []
    for i in range(24):
        y, m = divmod(today.year * 12 + today.month - 1 - 24 + i, 12)
        out.append({"indicator_code": code, "period": f"{y}-{m + 1:02d}", "value": 100 + (i * 7) % 11})
    return out


async def _copy_observations(url: str, template_code: str, prefix: str, first: int, last: int) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await copy_rows(conn, "observations", template_code, prefix, first, last)
        await conn.execute("ANALYZE observations")
    finally:
        await conn.close()


def clone_with_history(url: str, template_code: str, prefix: str, first: int, last: int) -> None:
    if last < first:
        return
    clone_indicators(url, template_code, prefix, first, last)
    asyncio.run(_copy_observations(url, template_code, prefix, first, last))


def _measure(client: httpx.Client, path: str, repeats: int, warmup: int = 2) -> tuple[list[float], int]:
    times, size = [], 0
    for i in range(repeats + warmup):
        t0 = time.perf_counter()
        r = client.get(path)
        dt = time.perf_counter() - t0
        if r.status_code != 200:
            raise RuntimeError(f"GET {path} answered {r.status_code}: {r.text[:300]}")
        size = len(r.content)
        if i >= warmup:
            times.append(dt)
    return times, size


def _tiles(client: httpx.Client, path: str) -> int:
    return client.get(path).text.count('class="tile ')


def _round(client: httpx.Client, cfg: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, path in PAGES.items():
        times, size = _measure(client, path, cfg.render_repeats)
        out[name] = summary_ms(times) | {"bytes": size}
    times, size = _measure(client, "/dashboard?refresh=0", cfg.render_board_repeats, warmup=1)
    out["board"] = summary_ms(times) | {"bytes": size, "tiles": _tiles(client, "/dashboard?refresh=0")}
    return out


def run(cfg: Any, dbs: Databases, broker: LocalBroker, folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"method": "HTTP GET, sequential, PostgreSQL; medians", "small_indicators": cfg.render_small,
                           "large_indicators": cfg.render_large, "department_indicators": DEPT_INDICATORS}
    departments = (("STREETS", "Streets Department"), ("WATER", "Water Department"))
    with indicators_service(dbs, broker, folder, "render", departments) as (url, base):
        for code, dept in (("RNDSTREETS", "STREETS"), ("RNDWATER", "WATER")):
            create_template(base, code, frequency="monthly", department=dept, critical=dept == "STREETS",
                            targets=[{"period": _history(code)[0]["period"], "value": 104, "applies": "onward"}])
            r = httpx.post(f"{base}/observations/bulk", json=_history(code), headers=ANALYST, timeout=60)
            if r.status_code != 200:
                raise RuntimeError(f"history bulk answered {r.status_code}: {r.text[:300]}")
        clone_with_history(url, "RNDSTREETS", "RS", 1, DEPT_INDICATORS - 1)
        clone_with_history(url, "RNDWATER", "RW", 1, cfg.render_small - DEPT_INDICATORS - 1)
        with httpx.Client(base_url=base, timeout=600) as client:
            small = _round(client, cfg)
            log(f"render: {cfg.render_small} indicators measured; registering up to {cfg.render_large:,}")
            clone_with_history(url, "RNDWATER", "RW", cfg.render_small - DEPT_INDICATORS,
                               cfg.render_large - DEPT_INDICATORS - 1)
            large = _round(client, cfg)
    out["small"], out["large"] = small, large
    for name in PAGES:
        out[f"{name}_ratio"] = ratio(large[name]["p50_ms"], small[name]["p50_ms"], 3)
    per_tile_small = small["board"]["p50_ms"] / max(small["board"]["tiles"], 1)
    per_tile_large = large["board"]["p50_ms"] / max(large["board"]["tiles"], 1)
    out["board_ms_per_tile"] = {"small": round(per_tile_small, 3), "large": round(per_tile_large, 3)}
    out["board_per_tile_ratio"] = ratio(per_tile_large, per_tile_small, 3)
    log(f"render: department {small['dashboard']['p50_ms']} -> {large['dashboard']['p50_ms']} ms "
        f"({out['dashboard_ratio']}x), report {out['report_ratio']}x, board per tile {out['board_per_tile_ratio']}x "
        f"({small['board']['tiles']} -> {large['board']['tiles']} tiles)")
    return out
