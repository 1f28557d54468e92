"""Benchmark: the cost of tagging every new request with its areas (issue 21, item 6).

Two intake311 services on PostgreSQL side by side, the same load (bench/wrk_post.lua: random points
in the ~17 km box around City Hall): one without boundary layers, one with 4 layers of 50 areas
each (200 areas tiling the box, every boundary segmentised to ~200 vertices, as real ward lines
have). ``areas_rounds`` rounds of (without, with) back to back, each after the other's outbox has
drained, the side measured first alternating (ABBA); the median throughput ratio with/without is
the figure (target >= 0.95). The api's and worker's CPU per request, with/without, is reported
beside it, and the write path alone (``write_path``: the group commit's write called in this process,
batches of 50 alternating between the two databases), where the tagging's share shows with less noise.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import orjson
import shapely

from bench.common import BenchStack, Databases, log, migrate, ratio, run_wrk
from bench.intake import POST_SCRIPT, _check_post, _post_args, _wait_drained
from citystat_common.auth import Actor
from citystat_common.db import create_engine, session_factory, utcnow
from citystat_common.localbroker import LocalBroker
from citystat_common.uow import UnitOfWork

BOX = (-75.25, 39.87, -75.05, 40.03)  # min_long, min_lat, max_long, max_lat: wrk_post.lua's box
GRIDS = {"ward": (10, 5), "council_district": (5, 10), "police_district": (25, 2), "sanitation_district": (2, 25)}


def layer_doc(cols: int, rows: int, vertices: int = 200, box: tuple[float, float, float, float] = BOX) -> dict[str, Any]:
    """A FeatureCollection of cols x rows rectangles tiling ``box``, each with about ``vertices`` points."""
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) / cols, (y1 - y0) / rows
    step = 2 * (dx + dy) / vertices
    features = []
    for i in range(cols):
        for j in range(rows):
            cell = shapely.segmentize(shapely.box(x0 + i * dx, y0 + j * dy, x0 + (i + 1) * dx, y0 + (j + 1) * dy), step)
            features.append({"type": "Feature", "properties": {"code": f"{i}-{j}", "name": f"Area {i}-{j}"},
                             "geometry": shapely.geometry.mapping(cell)})
    return {"type": "FeatureCollection", "features": features}


async def _load_layers(url: str, box: tuple[float, float, float, float] = BOX, starts: Any = None) -> int:
    """GRIDS' 4 layers (200 areas) over ``box``, in force from ``starts`` (default now)."""
    from intake311.areas_import import import_layer
    from intake311.models import PLUMBING

    engine = create_engine(url)
    total = 0
    try:
        for layer, (cols, rows) in GRIDS.items():
            async with UnitOfWork(session_factory(engine), PLUMBING) as uow:
                doc = layer_doc(cols, rows, box=box)
                # round-tripped through JSON lists, as a file gives them (mapping() gives tuples)
                result = await import_layer(uow, layer=layer, doc=orjson.loads(orjson.dumps(doc)), code_property="code",
                                            name_property="name", starts=starts or utcnow(), actor=Actor(kind="key", name="bench"),
                                            extent=None)
                await uow.commit()
                total += result["area_count"]
    finally:
        await engine.dispose()
    return total


def run(cfg: Any, dbs: Databases, broker: LocalBroker, folder: Path) -> dict[str, Any]:
    load = dict(duration=cfg.areas_duration, connections=cfg.connections, threads=cfg.wrk_threads)
    warm = dict(duration=cfg.warmup, connections=cfg.connections, threads=cfg.wrk_threads)
    urls = {"plain": dbs.pg("areas_plain"), "layers": dbs.pg("areas_layers")}
    for url in urls.values():
        migrate("intake311", url)
    out: dict[str, Any] = {"layers": {k: v[0] * v[1] for k, v in GRIDS.items()},
                           "areas": asyncio.run(_load_layers(urls["layers"])), "duration_s": cfg.areas_duration}
    stacks = {name: BenchStack(folder / f"areas-{name}", {"intake311": url}, broker,
                               extra_env={"INTAKE311_RATE_LIMIT_PER_MINUTE": "0"}) for name, url in urls.items()}
    rounds: list[dict[str, Any]] = []
    try:
        for stack in stacks.values():
            stack.start("intake311")
        for stack in stacks.values():
            stack.wait_healthy(timeout=90)
        tagged = _check_post(stacks["layers"].url("intake311"))
        out["check_request"] = tagged.get("service_request_id")
        for stack in stacks.values():
            run_wrk(f"{stack.url('intake311')}/requests.json", script=POST_SCRIPT, script_args=_post_args(), **warm)
        for n in range(max(1, cfg.areas_rounds)):
            r: dict[str, Any] = {}
            # ABBA: the side measured first alternates, so a machine growing busier over the run
            # (other work on a shared host) does not always land on the same side
            for name in ("plain", "layers") if n % 2 == 0 else ("layers", "plain"):
                stack = stacks[name]
                _wait_drained(urls[name], timeout=120)
                r[name] = run_wrk(f"{stack.url('intake311')}/requests.json", script=POST_SCRIPT,
                                  script_args=_post_args(), server_pids=stack.pids("intake311").values(), **load)
                # CPU of the api and worker per request: steadier than throughput on a shared machine
                r[name]["cpu_ms_per_request"] = ratio(r[name]["server_cpu_cores"] * 1000, r[name]["ok_rps"], 4)
            r["ratio_rps"] = ratio(r["layers"]["ok_rps"], r["plain"]["ok_rps"])
            r["ratio_cpu_per_request"] = ratio(r["layers"]["cpu_ms_per_request"], r["plain"]["cpu_ms_per_request"])
            rounds.append(r)
            log(f"areas: without {r['plain']['ok_rps']} req/s, with 200 areas {r['layers']['ok_rps']} req/s "
                f"({r['ratio_rps']}); CPU per request {r['plain']['cpu_ms_per_request']} -> "
                f"{r['layers']['cpu_ms_per_request']} ms ({r['ratio_cpu_per_request']})")
        time.sleep(1)
        out["tagged_rows"] = asyncio.run(_tagged(urls["layers"]))
    finally:
        for stack in stacks.values():
            stack.stop_all()
    out["write_path"] = asyncio.run(_write_path(urls, rounds=max(2, cfg.areas_rounds), batches=10, batch_size=50))
    log(f"areas: write path alone, ratio with/without layers {out['write_path']['ratio_rps']} (rounds "
        f"{[x['ratio_rps'] for x in out['write_path']['rounds']]}); CPU per request ratio "
        f"{out['write_path']['ratio_cpu_per_request']}")
    out["rounds"] = rounds
    out["ratio_rps_with_layers"] = statistics.median(x["ratio_rps"] for x in rounds if x["ratio_rps"] is not None)
    out["ratio_cpu_per_request"] = statistics.median(
        x["ratio_cpu_per_request"] for x in rounds if x["ratio_cpu_per_request"] is not None)
    out["rps_without"] = statistics.median(x["plain"]["ok_rps"] for x in rounds)
    out["rps_with"] = statistics.median(x["layers"]["ok_rps"] for x in rounds)
    log(f"areas: median ratio with/without layers {out['ratio_rps_with_layers']} (rounds "
        f"{[x['ratio_rps'] for x in rounds]}); request_areas rows {out['tagged_rows']}")
    return out


async def _tagged(url: str) -> dict[str, int]:
    """Rows tagged per layer and how many fell in an area: the load really was tagged."""
    import sqlalchemy as sa

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT layer, count(*), count(code) FROM request_areas GROUP BY layer"))
            return {f"{layer} (in an area)": int(inside) for layer, _, inside in rows} | {
                "requests": int((await conn.execute(sa.text("SELECT count(*) FROM service_requests"))).scalar_one())}
    finally:
        await engine.dispose()


# --- the write path alone, in this process -----------------------------------------------------


async def _write_path(urls: dict[str, str], rounds: int, batches: int, batch_size: int) -> dict[str, Any]:
    """The group commit's write (``write_new_requests``: tagging, requests, notes, areas, outbox in
    one statement) called directly, batch after batch, on both databases in alternating chunks:
    no HTTP and no load generator, so the tagging's share shows with less noise than through wrk."""
    import random
    from functools import partial

    from intake311.areas_index import AreaIndex
    from intake311.catalog import CatalogCache
    from intake311.config import Settings
    from intake311.deps import Deps
    from intake311.intake import NewRequestItem, write_new_requests
    from intake311.models import PLUMBING
    from intake311.open311 import NewRequest
    from intake311.service import RequestDraft, RequestNumbers

    rng = random.Random(7)
    engines = {name: create_engine(url) for name, url in urls.items()}
    try:
        sides = {}
        for name, engine in engines.items():
            sessions = session_factory(engine)
            factory = partial(UnitOfWork, sessions, PLUMBING)
            settings = Settings(database_url=urls[name])
            entry = await CatalogCache(factory, timezone=settings.city_timezone).get("POTHOLE")
            sides[name] = (sessions, settings, entry, AreaIndex(factory), RequestNumbers(block=200))

        async def one_batch(name: str) -> None:
            sessions, settings, entry, index, numbers = sides[name]
            items = [NewRequestItem(draft=RequestDraft(
                data=NewRequest(service_code="POTHOLE", lat=BOX[1] + rng.random() * (BOX[3] - BOX[1]),
                                long=BOX[0] + rng.random() * (BOX[2] - BOX[0]), attributes={"SIZE": "large"},
                                description="Benchmark request"),
                service=entry, channel="web", author="bench")) for _ in range(batch_size)]
            async with UnitOfWork(sessions, PLUMBING, single_statement=True) as uow:
                await write_new_requests(uow, Deps(settings), items=items, numbers=numbers, areas=index)
                await uow.commit()

        for name in sides:  # warm: the trees built, statements prepared
            for _ in range(3):
                await one_batch(name)
        per_round = []
        for n in range(rounds):
            r: dict[str, float] = {}
            for name in ("plain", "layers") if n % 2 == 0 else ("layers", "plain"):
                t0, c0 = time.perf_counter(), time.process_time()
                for _ in range(batches):
                    await one_batch(name)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                r[f"{name}_rps"] = round(batches * batch_size / wall, 1)
                r[f"{name}_cpu_ms_per_request"] = round(cpu * 1000 / (batches * batch_size), 4)
            r["ratio_rps"] = round(r["layers_rps"] / r["plain_rps"], 3)
            per_round.append(r)
        return {"batch_size": batch_size, "batches_per_side": batches, "rounds": per_round,
                "ratio_rps": statistics.median(x["ratio_rps"] for x in per_round),
                "ratio_cpu_per_request": round(statistics.median(x["layers_cpu_ms_per_request"] for x in per_round)
                                               / statistics.median(x["plain_cpu_ms_per_request"] for x in per_round), 3)}
    finally:
        for engine in engines.values():
            await engine.dispose()
