"""Benchmarks 4 (breach to ticket) and 6 (memory), on one stack of all four services as separate
processes (api through the launcher, worker per service, PostgreSQL databases, the run's broker).

Breach to ticket: indicators (clones of one template, target 100) get one observation each
(value 50: a 50% miss, red, ``indicators.indicator.breached``) at a steady rate; a single watcher
long-polls GET /tickets (newest first; ``If-None-Match`` and ``Prefer: wait``, answered when a commit
changes the list: ``citystat_common.longpoll``) and notes when each indicator's ticket is first
readable. Latency = that moment minus the start of the observation's POST. Baseline, at the same
time and rate on the same broker: aiokafka produce (acks=all) -> consume round trip of a small
message, with the consumer's fetch settings left at the defaults the services use.

Memory: VmRSS of each service's api and worker after start-up (idle, directory seeded) and the
peak while the intake311 api takes ``memory_load`` seconds of the intake wrk load (the other
services then work too: indicators consumes 311.requests)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import (
    BenchStack,
    Databases,
    RssSampler,
    cpu_seconds,
    histogram_totals,
    log,
    migrate,
    ratio,
    rss_mb,
    run_wrk,
    summary_ms,
)
from bench.indsetup import ANALYST, clone_indicators, create_template
from bench.intake import POST_SCRIPT, _check_post, _post_args
from citystat_common.bus import ensure_topics
from citystat_common.demo import directory_rows
from citystat_common.localbroker import LocalBroker
from citystat_common.stack import ALL_SERVICES
from citystat_common.testing import TEST_KEYS

LONG_POLL_WAIT_S = 5  # the watcher's Prefer: wait; it asks again at once after every answer
IDLE_CPU_S = 10.0  # idle CPU of every process (relay polls, consumer fetches, schedulers)
RTT_TOPIC = "bench.rtt"


def import_city(stack: BenchStack) -> None:
    """The demo city imported into the running directory; then indicators, escalation and intake311 ready."""
    r = httpx.post(f"{stack.url('directory')}/import", json={"rows": directory_rows()},
                   headers={"X-API-Key": TEST_KEYS["admin"]}, timeout=60)
    if r.status_code != 200:
        raise RuntimeError(f"directory import answered {r.status_code}: {r.text[:300]}")
    for name in ("indicators", "escalation", "intake311"):
        _wait_ready(stack.url(name))


def _wait_ready(base: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{base}/readyz", timeout=3)
            if r.status_code == 200:
                return
            last = r.text
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise TimeoutError(f"{base} not ready: {last[:300]}")


def _memory_snapshot(stack: BenchStack) -> dict[str, dict[str, float | None]]:
    return {name: {role: rss_mb(pid) for role, pid in stack.pids(name).items()} for name in stack.services}


async def _broker_rtt(bootstrap: str, rate: float, duration: float, topic: str = RTT_TOPIC,
                      **consumer_kwargs: Any) -> list[float]:
    await ensure_topics(bootstrap, 1, topics=(topic,), attempts=10)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, enable_idempotence=False)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", **consumer_kwargs)
    await producer.start()
    await consumer.start()
    sent: dict[bytes, float] = {}
    rtts: list[float] = []
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_beginning()
        done = asyncio.Event()
        n_total = max(1, int(rate * duration))

        async def consume() -> None:
            while len(rtts) < n_total:
                batches = await consumer.getmany(timeout_ms=1000)
                now = time.perf_counter()
                for records in batches.values():
                    for rec in records:
                        t = sent.pop(rec.value, None)
                        if t is not None:
                            rtts.append(now - t)
            done.set()

        task = asyncio.create_task(consume())
        await asyncio.sleep(1.0)  # let the consumer's first fetch start
        start = time.perf_counter()
        for i in range(n_total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            key = f"m{i}".encode()
            sent[key] = time.perf_counter()
            await producer.send_and_wait(topic, key)
        try:
            await asyncio.wait_for(done.wait(), timeout=30)
        except TimeoutError:
            pass
        task.cancel()
    finally:
        await producer.stop()
        await consumer.stop()
    return rtts


async def _breach_load(ind_base: str, esc_base: str, targets: list[tuple[str, str]], rate: float,
                       period: str) -> tuple[dict[str, float], dict[str, float], int, dict[str, Any]]:
    posted: dict[str, float] = {}
    post_ms: dict[str, float] = {}
    seen: dict[str, float] = {}
    # wall-clock twins, so the databases' own timestamps can split the path into stages
    posted_wall: dict[str, float] = {}
    seen_wall: dict[str, float] = {}
    poll_s: list[float] = []
    errors = 0
    ids = {iid for _, iid in targets}
    async with httpx.AsyncClient(timeout=30) as ind, httpx.AsyncClient(base_url=esc_base, timeout=30) as esc:

        async def post(code: str, iid: str, at: float) -> None:
            nonlocal errors
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = time.perf_counter()
            posted[iid] = t0
            posted_wall[iid] = time.time()
            r = await ind.post(f"{ind_base}/indicators/{code}/observations", json={"period": period, "value": 50},
                               headers=ANALYST)
            post_ms[iid] = (time.perf_counter() - t0) * 1000
            if r.status_code != 200:
                errors += 1
                log(f"breach: observation POST answered {r.status_code}: {r.text[:200]}")

        async def poll() -> None:
            deadline = None
            etag = None
            while len(seen) < len(ids):
                now = time.perf_counter()
                if len(posted) == len(ids):
                    deadline = deadline or now + 60
                    if now > deadline:
                        break
                headers = {"If-None-Match": etag, "Prefer": f"wait={LONG_POLL_WAIT_S}"} if etag else {}
                r = await esc.get("/tickets", params={"source": "threshold", "page_size": 50}, headers=headers)
                t = time.perf_counter()
                t_wall = time.time()
                poll_s.append(t - now)
                if r.status_code == 200:
                    etag = r.headers.get("etag")
                    for item in r.json()["items"]:
                        iid = item.get("indicator_id")
                        if iid in ids and iid in posted and iid not in seen:
                            seen[iid] = t
                            seen_wall[iid] = t_wall
                elif r.status_code != 304:
                    log(f"breach: GET /tickets answered {r.status_code}: {r.text[:200]}")
                    await asyncio.sleep(0.1)

        start = time.perf_counter() + 0.5
        poller = asyncio.create_task(poll())
        await asyncio.gather(*(post(code, iid, start + i / rate) for i, (code, iid) in enumerate(targets)))
        await poller
    lat = {iid: seen[iid] - posted[iid] for iid in seen}
    return lat, post_ms, errors, {"posted_wall": posted_wall, "seen_wall": seen_wall, "poll_s": poll_s}


async def _stages(ind_url: str, esc_url: str, ids: set[str], walls: dict[str, Any]) -> dict[str, Any]:
    """Where the time goes, from the databases' own timestamps (same host clock): POST sent ->
    outbox row written -> published by the indicators relay -> ticket opened by the escalation
    consumer -> first seen by the watcher (GET /tickets)."""
    import asyncpg

    from bench.common import asyncpg_dsn

    ic = await asyncpg.connect(asyncpg_dsn(ind_url))
    ec = await asyncpg.connect(asyncpg_dsn(esc_url))
    try:
        ob = {r["key"]: r for r in await ic.fetch(
            "SELECT key, created_at, sent_at FROM outbox WHERE event_type = 'indicators.indicator.breached'")}
        tk = {r["indicator_id"]: r for r in await ec.fetch(
            "SELECT indicator_id, min(opened_at) AS opened_at FROM tickets GROUP BY indicator_id")}
    finally:
        await ic.close()
        await ec.close()
    written, relay, bus, readable = [], [], [], []
    for iid in ids:
        o, t = ob.get(iid), tk.get(iid)
        if o is None or t is None or o["sent_at"] is None:
            continue
        written.append(o["created_at"].timestamp() - walls["posted_wall"][iid])
        relay.append((o["sent_at"] - o["created_at"]).total_seconds())
        bus.append((t["opened_at"] - o["sent_at"]).total_seconds())
        readable.append(walls["seen_wall"][iid] - t["opened_at"].timestamp())
    return {"posted_to_outbox_row": summary_ms(written), "outbox_to_published": summary_ms(relay),
            "published_to_ticket_opened": summary_ms(bus), "ticket_opened_to_seen": summary_ms(readable),
            "long_poll_answers": len(walls["poll_s"])}


SERVER_ROUTES = {  # the routes on the breach path, as the services' own latency histograms name them
    "indicators": ("POST", "/indicators/{code}/observations"),
    "directory": ("GET", "/routing"),
    "escalation": ("GET", "/tickets"),
}


def _consumer_batches(stack: BenchStack) -> tuple[float, float]:
    """(count, sum) of escalation's consumer batches so far (``citystat_consumer_batch_seconds``)."""
    return histogram_totals(stack.url("escalation"), "citystat_consumer_batch_seconds", {}) or (0.0, 0.0)


def _server_means(stack: BenchStack, batches_before: tuple[float, float]) -> dict[str, Any]:
    """Mean server-side latency of each route on the breach path, read from its /metrics; and of
    the escalation consumer's batches during the load (from its events parsed to its commit)."""
    out: dict[str, Any] = {}
    n, total = (a - b for a, b in zip(_consumer_batches(stack), batches_before, strict=True))
    if n:
        out["escalation consumer batch"] = {"n": int(n), "mean_ms": round(total / n * 1000, 3)}
    for name, (method, route) in SERVER_ROUTES.items():
        totals = histogram_totals(stack.url(name), "citystat_http_request_duration_seconds",
                                  {"method": method, "route": route})
        if totals and totals[0]:
            out[f"{name} {method} {route}"] = {"n": int(totals[0]), "mean_ms": round(totals[1] / totals[0] * 1000, 3)}
    return out


def service_consumer_kwargs() -> dict[str, Any]:
    """The fetch settings the services' ConsumerRunner uses, so the broker baseline is measured
    with the same client behaviour (Tansu answers a fetch only when fetch_max_wait_ms expires)."""
    try:
        from citystat_common.consumer import CONSUMER_FETCH_KWARGS  # type: ignore[attr-defined]

        return dict(CONSUMER_FETCH_KWARGS)
    except ImportError:
        return {}


def run_stack(cfg: Any, dbs: Databases, broker: LocalBroker, folder: Path, *, breach: bool, memory: bool) -> dict[str, Any]:
    urls = {name: dbs.pg(name) for name in ALL_SERVICES}
    for name, url in urls.items():
        migrate(name, url)
    stack = BenchStack(folder / "stack", urls, broker, extra_env={"{SVC}_RATE_LIMIT_PER_MINUTE": "0"})
    out: dict[str, Any] = {}
    try:
        stack.start_all(timeout=120)
        import_city(stack)
        time.sleep(5)
        mem: dict[str, Any] = {}
        if memory:
            mem["idle"] = _memory_snapshot(stack)
            all_pids = {f"{n}.{role}": pid for n in stack.services for role, pid in stack.pids(n).items()}
            cpu0 = {k: cpu_seconds(p) for k, p in all_pids.items()}
            time.sleep(IDLE_CPU_S)
            mem["idle_cpu_cores"] = {k: round((cpu_seconds(p) - cpu0[k]) / IDLE_CPU_S, 3) for k, p in all_pids.items()}
        if breach:
            n = max(1, int(cfg.breach_rate * cfg.breach_duration))
            ind_base = stack.url("indicators")
            create_template(ind_base, "BREACHTPL", frequency="monthly", targets=[{"fiscal_year": 2027, "value": 100}])
            codes = clone_indicators(urls["indicators"], "BREACHTPL", "BR", 1, n)
            import asyncpg

            from bench.common import asyncpg_dsn

            async def idmap() -> dict[str, str]:
                conn = await asyncpg.connect(asyncpg_dsn(urls["indicators"]))
                try:
                    return {r["code"]: r["id"] for r in await conn.fetch("SELECT code, id FROM indicators WHERE code LIKE 'BR%'")}
                finally:
                    await conn.close()

            m = asyncio.run(idmap())
            targets = [(c, m[c]) for c in codes]
            log(f"breach: {n} observations at {cfg.breach_rate}/s; broker round trip measured alongside")

            async def both() -> tuple[Any, list[float], list[float]]:
                return await asyncio.gather(  # type: ignore[return-value]
                    _breach_load(ind_base, stack.url("escalation"), targets, cfg.breach_rate, "2026-10"),
                    _broker_rtt(broker.bootstrap, cfg.breach_rate, cfg.breach_duration, RTT_TOPIC,
                                **service_consumer_kwargs()),
                    _broker_rtt(broker.bootstrap, cfg.breach_rate, cfg.breach_duration, RTT_TOPIC + ".floor",
                                fetch_max_wait_ms=10),
                )

            batches_before = _consumer_batches(stack)
            (lat, post_ms, errors, walls), rtts, floor = asyncio.run(both())
            res: dict[str, Any] = {
                "observations": n, "rate_per_s": cfg.breach_rate, "watch": f"long poll, Prefer: wait={LONG_POLL_WAIT_S}",
                "tickets_seen": len(lat), "post_errors": errors,
                "ticket": summary_ms(lat.values()),
                "observation_post": summary_ms(v / 1000 for v in post_ms.values()),
                "broker_rtt": summary_ms(rtts),
                "broker_rtt_consumer_settings": service_consumer_kwargs() or "aiokafka defaults (as the services)",
                "broker_rtt_floor_fetch_wait_10ms": summary_ms(floor),
            }
            res["ratio_p99_vs_broker_floor"] = ratio(res["ticket"].get("p99_ms"), res["broker_rtt_floor_fetch_wait_10ms"].get("p99_ms"), 2)
            res["stages"] = asyncio.run(_stages(urls["indicators"], urls["escalation"], set(lat), walls))
            res["server_side"] = _server_means(stack, batches_before)
            res["ratio_p99_vs_broker"] = ratio(res["ticket"].get("p99_ms"), res["broker_rtt"].get("p99_ms"), 2)
            res["ratio_p50_vs_broker"] = ratio(res["ticket"].get("p50_ms"), res["broker_rtt"].get("p50_ms"), 2)
            out["breach"] = res
            log(f"breach: ticket p50/p99 {res['ticket'].get('p50_ms')}/{res['ticket'].get('p99_ms')} ms; broker "
                f"p50/p99 {res['broker_rtt'].get('p50_ms')}/{res['broker_rtt'].get('p99_ms')} ms; "
                f"{len(lat)}/{n} tickets")
        if memory:  # after the breach load, so that the 311 events of this load do not disturb it
            _check_post(stack.url("intake311"))
            pids = {f"{n}.{role}": pid for n in stack.services for role, pid in stack.pids(n).items()}
            with RssSampler(pids) as sampler:
                load = run_wrk(f"{stack.url('intake311')}/requests.json", duration=cfg.memory_load,
                               connections=cfg.connections, threads=cfg.wrk_threads, script=POST_SCRIPT,
                               script_args=_post_args())
            mem["intake_load"] = {"rps": load["ok_rps"], "seconds": cfg.memory_load}
            services: dict[str, Any] = {}
            for n in stack.services:
                idle = mem["idle"][n]
                peak = {role: sampler.peak.get(f"{n}.{role}") for role in stack.pids(n)}
                services[n] = {"idle_mb": idle, "load_peak_mb": peak}
            mem["services"] = services
            mem["idle_max_mb"] = max(v for s in mem["idle"].values() for v in s.values() if v is not None)
            out["memory"] = mem
            log(f"memory: idle max {mem['idle_max_mb']} MB")
    finally:
        stack.stop_all()
    return out
