"""Fault tests over the whole system as processes, each bounded in time:
broker outage under load, kill -9 of a consumer mid-processing, directory down, replay.
Every accepted request and observation must end in exactly the expected effects."""

import asyncio
import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from citystat_common.demo import directory_rows
from citystat_common.localbroker import LocalBroker, free_port
from citystat_common.stack import ALL_SERVICES
from citystat_common.testing import TEST_KEYS, auth, eventually, midday_timezone
from indicators.periods import period_of, prev_period

DEPT = "WATER"
SERVICE = "FAULT_LEAK"
# The monthly indicators are breached for last month: its figure is due ten days after this month
# ends, so the indicator never turns "missing" (grey, no breach) whenever the suite runs.
LAST_MONTH = prev_period(period_of("monthly", datetime.now(UTC).date())).label
ENV = {
    # the daily 311 count must not start a new day while a test compares it with what was posted
    "CITY_TIMEZONE": midday_timezone(),
    "INDICATORS_DERIVED_FREQUENCY": "daily",
    "INDICATORS_DERIVED_REFRESH_SECONDS": "2",
    "INTAKE311_RATE_LIMIT_PER_MINUTE": "0",
    "INDICATORS_RATE_LIMIT_PER_MINUTE": "0",
    "ESCALATION_RATE_LIMIT_PER_MINUTE": "0",
    "DIRECTORY_OUTBOX_MAX_BACKOFF": "1",
    "INTAKE311_OUTBOX_MAX_BACKOFF": "1",
    "INDICATORS_OUTBOX_MAX_BACKOFF": "1",
    "ESCALATION_OUTBOX_MAX_BACKOFF": "1",
    "INTAKE311_KAFKA_REQUEST_TIMEOUT_MS": "2000",
    "INDICATORS_KAFKA_REQUEST_TIMEOUT_MS": "2000",
    "ESCALATION_KAFKA_REQUEST_TIMEOUT_MS": "2000",
    "DIRECTORY_KAFKA_REQUEST_TIMEOUT_MS": "2000",
    # a killed worker's partitions go to its successor after 3 s instead of 10 (each kill waits for it)
    **{f"{svc.upper()}_CONSUMER_SESSION_TIMEOUT_MS": "3000" for svc in ("directory", "intake311", "indicators", "escalation")},
}


class City:
    def __init__(self, stack):
        self.stack = stack
        self.c = {s: httpx.AsyncClient(base_url=stack.url(s), timeout=30) for s in stack.services}
        self.requests: list[str] = []
        self.indicators: list[str] = []

    async def close(self):
        for c in self.c.values():
            await c.aclose()

    async def setup(self, indicators=0):
        r = await self.c["directory"].post("/import", json={"rows": directory_rows()}, headers=auth("directory"))
        assert r.status_code == 200, r.text
        r = await self.c["intake311"].post("/admin/services", headers=auth("admin"), json={
            "service_code": SERVICE, "service_name": "Leak (fault test)", "department_code": DEPT,
            "service_level": {"amount": 3, "unit": "business_days"},
        })
        assert r.status_code == 201, r.text
        for i in range(indicators):
            code = f"FAULT.{DEPT}.i{i}"
            r = await self.c["indicators"].post("/indicators", headers=auth("analyst"), json={
                "code": code, "name": f"Fault indicator {i}", "department_code": DEPT, "unit": "count",
                "kind": "output", "direction": "up", "frequency": "monthly", "function_tag": "technology",
            })
            assert r.status_code == 201, r.text
            r = await self.c["indicators"].put(f"/indicators/{code}/targets", headers=auth("analyst"),
                                               json={"targets": [{"period": LAST_MONTH, "value": 100}]})
            assert r.status_code == 200, r.text
            self.indicators.append(code)

    async def post_requests(self, n):
        for _ in range(n):
            k = len(self.requests)
            r = await self.c["intake311"].post("/open311/v2/requests.json", data={
                "api_key": TEST_KEYS["call_center"], "service_code": SERVICE,
                "lat": f"{39.80 + k * 0.003:.5f}", "long": f"{-75.30 + k * 0.003:.5f}", "description": f"leak {k}"})
            assert r.status_code == 201, r.text  # accepted whatever the broker is doing
            self.requests.append(r.json()[0]["service_request_id"])

    async def breach(self, code):
        r = await self.c["indicators"].post(f"/indicators/{code}/observations", headers=auth("analyst"),
                                            json={"period": LAST_MONTH, "value": 40})
        assert r.status_code in (200, 201), r.text

    async def opened_today(self):
        r = await self.c["indicators"].get(f"/indicators/311.{DEPT}.opened")
        return r.json().get("latest_value") if r.status_code == 200 else None

    async def tickets_per_indicator(self):
        r = await self.c["escalation"].get("/tickets", params={"department": DEPT, "page_size": 500})
        counts: dict[str, int] = {}
        for t in r.json()["items"]:
            if t["indicator_code"]:
                counts[t["indicator_code"]] = counts.get(t["indicator_code"], 0) + 1
        return counts

    async def exact(self):
        """Every accepted request counted once, every breached indicator has exactly one ticket."""
        async def settled():
            opened = await self.opened_today()
            tickets = await self.tickets_per_indicator()
            return opened == len(self.requests) and tickets == dict.fromkeys(self.indicators, 1)
        try:
            await eventually(settled, timeout=150, interval=0.5)
        except AssertionError:
            print("opened", await self.opened_today(), "posted", len(self.requests),
                  "tickets", await self.tickets_per_indicator())
            for name in ("intake311", "indicators"):
                lines = [ln for ln in self.stack.logs(name).splitlines() if '"level": "warning"' in ln or "error" in ln]
                print(name, "warnings:", *lines[-15:], sep="\n")
            raise


def replay_all(stack, since):
    for name in stack.services:
        out = subprocess.run([sys.executable, "-m", f"{name}.worker", "replay", "--since", since.isoformat()],
                             env=stack.env(name), cwd=stack.folder, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr


@pytest.fixture
def own_broker(tmp_path):
    """A broker for one test. Ask for it before ``stack_factory``: fixtures are torn down in
    reverse, so the broker then outlives the stack (workers stopping against a closed broker wait
    out their timeouts, ~5 s per test)."""
    b = LocalBroker(free_port(), log_path=tmp_path / "own-broker.log")
    b.start()
    yield b
    b.close()


async def test_broker_killed_under_load_recovers_without_a_manual_replay(own_broker, stack_factory):
    """The broker is killed -9 while requests stream in, and a new empty one starts on the same port.
    Nobody runs ``replay``: each relay notices the broker lost what it held (its witness records are
    gone) and publishes again what the consumer groups may not have read, including events the old
    broker had accepted just before the kill and nobody had read yet."""
    stack = stack_factory(list(ALL_SERVICES), extra_env=ENV, own_broker=own_broker)
    city = City(stack)
    try:
        await city.setup(indicators=6)
        await city.post_requests(15)
        for code in city.indicators[:3]:
            await city.breach(code)

        async def load():
            await city.post_requests(30)

        streaming = asyncio.create_task(load())
        await eventually(lambda: len(city.requests) >= 25, timeout=60, interval=0.05)
        own_broker.stop(kill=True)  # memory-only: whatever it held is gone, read or not
        for code in city.indicators[3:]:
            await city.breach(code)
        own_broker.start()
        await streaming
        await city.exact()

        async def resets_reported():
            # the services that had published to the old broker before the kill (escalation's first
            # tickets may have gone out only to the new one: then it lost nothing)
            silent = [name for name in ("directory", "intake311", "indicators")
                      if "citystat_broker_resets_total{" not in (await city.c[name].get("/metrics")).text]
            if silent:
                print("no reset reported by", silent)
            return not silent

        await eventually(resets_reported, timeout=60)  # the operator is told; nothing to do
    finally:
        await city.close()


async def test_kill_minus_9_mid_processing_gives_exactly_once(own_broker, stack_factory):
    # A broker of its own: on the session's broker, where earlier stacks' workers used the same
    # group names, each restarted worker took ~18 s to be assigned its partitions instead of ~3.
    stack = stack_factory(list(ALL_SERVICES), extra_env=ENV, own_broker=own_broker)
    city = City(stack)
    rng = random.Random(7)
    try:
        await city.setup(indicators=3)

        def consumers_started():
            return stack.logs("indicators").count('"consumer_started"')

        async def killer():
            await eventually(lambda: consumers_started() >= 1, timeout=60)
            for _ in range(3):
                await asyncio.sleep(rng.uniform(0.2, 1.0))  # while events are being processed
                stack.stop_worker("indicators", kill=True)  # between its commit and its offset commit, or anywhere
                stack.services["indicators"].workers.clear()
                before = consumers_started()
                stack.start("indicators")
                await eventually(lambda before=before: consumers_started() > before, timeout=60)

        kill_task = asyncio.create_task(killer())
        await city.post_requests(40)
        for code in city.indicators:
            await city.breach(code)
        await kill_task
        await city.exact()
        assert consumers_started() >= 4  # it really was killed three times and came back each time
    finally:
        await city.close()


async def test_directory_down_intake_accepts_and_manual_flag_routes_from_copy(stack_factory):
    stack = stack_factory(list(ALL_SERVICES), extra_env=ENV)
    city = City(stack)
    try:
        await city.setup()

        async def copy_has_dept():
            r = await city.c["escalation"].get("/routing-copy")
            return r.status_code == 200 and DEPT in r.text
        await eventually(copy_has_dept, timeout=60)
        stack.stop("directory")
        await city.post_requests(3)  # intake never needs the directory to accept a request
        r = await city.c["escalation"].post("/tickets", headers=auth("ops"), json={
            "department_code": DEPT, "title": "Crews report a pattern of repeat leaks", "reason": "field reports",
            "function_tag": "customer_service",
        })
        assert r.status_code == 201, r.text
        cso = next(x["person_name"] for x in directory_rows() if x["department_code"] == DEPT and x["role"] == "customer_service_officer")
        assert r.json()["assignee"]["name"] == cso
    finally:
        await city.close()


async def test_replay_of_the_last_day_changes_nothing(stack_factory):
    stack = stack_factory(list(ALL_SERVICES), extra_env=ENV)
    city = City(stack)
    try:
        await city.setup(indicators=2)
        await city.post_requests(10)
        for code in city.indicators:
            await city.breach(code)
        await city.exact()

        async def snapshot():
            tickets = (await city.c["escalation"].get("/tickets", params={"page_size": 500})).json()
            details = [(await city.c["escalation"].get(f"/tickets/{t['id']}")).json() for t in tickets["items"]]
            inds = (await city.c["indicators"].get("/indicators", params={"page_size": 500})).json()
            reqs = (await city.c["intake311"].get("/requests.json", params={"extensions": "true"})).json()
            return (
                sorted((d["id"], d["status"], d["level"], len(d["timeline"])) for d in details),
                sorted((i["code"], i["status"], i["latest_value"]) for i in inds["items"]),
                sorted((r["service_request_id"], r["status"], len(r.get("notes", []))) for r in reqs),
            )

        before = await snapshot()
        replay_all(stack, datetime.now(UTC) - timedelta(days=1))

        async def duplicates_seen():
            text = (await city.c["escalation"].get("/metrics")).text + (await city.c["indicators"].get("/metrics")).text
            return "citystat_events_duplicate_total{" in text
        await eventually(duplicates_seen, timeout=60)
        await asyncio.sleep(3)  # let the rest of the replayed events through
        assert await snapshot() == before
    finally:
        await city.close()




async def _replicas(stack, service, group):
    """{replica component: set of assigned partitions} from the workers' fresh heartbeats."""
    import sqlalchemy as sa

    from citystat_common.db import create_engine, utcnow

    engine = create_engine(stack.services[service].database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT component, details, updated_at FROM worker_heartbeat"))).all()
    finally:
        await engine.dispose()
    out = {}
    for component, details, updated in rows:
        details = json.loads(details) if isinstance(details, str) else details
        if component.startswith(f"consumer:{group}:") and details.get("assigned"):
            if updated.tzinfo is None:
                updated = updated.replace(tzinfo=UTC)
            if utcnow() - updated < timedelta(seconds=6):
                out[component] = {p for p in details["assigned"] if p.startswith("311.requests:") or p.startswith("indicators.status:")}
    return out


async def test_two_replicas_split_partitions_and_survive_a_kill(own_broker, stack_factory):
    from citystat_common.testing import postgres_admin_url

    if not postgres_admin_url():
        pytest.skip("replicas share a database: PostgreSQL (with SQLite there is one worker per database file)")
    stack = stack_factory(list(ALL_SERVICES), extra_env=ENV, own_broker=own_broker)  # see the kill -9 test
    city = City(stack)
    try:
        await city.setup(indicators=6)
        stack.start("indicators", workers=2)
        stack.start("escalation", workers=2)
        for service, group in (("indicators", "indicators"), ("escalation", "escalation")):
            async def split(service=service, group=group):
                replicas = await _replicas(stack, service, group)
                parts = list(replicas.values())
                return len(parts) == 2 and all(parts) and not (parts[0] & parts[1])
            await eventually(split, timeout=90, interval=0.5)  # both members hold partitions, none shared
        await city.post_requests(20)
        for code in city.indicators[:3]:
            await city.breach(code)
        stack.stop_worker("indicators", 0, kill=True)
        stack.stop_worker("escalation", 0, kill=True)
        await city.post_requests(20)
        for code in city.indicators[3:]:
            await city.breach(code)
        await city.exact()  # none lost when a replica died, none counted twice
    finally:
        await city.close()


def _series(text: str, name: str, service: str) -> float | None:
    prefix = f'{name}{{service="{service}"}}'
    line = next((ln for ln in text.splitlines() if ln.startswith(prefix)), None)
    return None if line is None else float(line.rsplit(" ", 1)[1])


async def test_what_the_operator_sees_after_a_worker_kill_and_a_broker_outage(own_broker, stack_factory):
    """kill -9 of a worker turns /readyz red within seconds (not 30) and its gauges leave the shared
    metrics folder; a broker outage shows in citystat_broker_up even with nothing to publish."""
    env = ENV | {"READINESS_CHECKS_WORKER": "true"}
    stack = stack_factory(["directory", "intake311"], extra_env=env, own_broker=own_broker)
    api = httpx.AsyncClient(base_url=stack.url("intake311"), timeout=30)
    try:
        async def ready():
            return (await api.get("/readyz")).status_code == 200

        async def metric(name):
            return _series((await api.get("/metrics")).text, name, "intake311")

        await eventually(ready, timeout=90, interval=0.5)
        await eventually(lambda: _is(metric("citystat_broker_up"), 1.0), timeout=60, interval=0.5)
        stack.stop_worker("intake311", kill=True)

        async def red():
            r = await api.get("/readyz")
            return r.status_code == 503 and any("silent" in p for p in r.json()["problems"])

        await eventually(red, timeout=30, interval=0.5)
        assert await metric("citystat_outbox_backlog") is None  # the dead worker's gauge is not read
        assert await metric("citystat_broker_up") is None
        stack.services["intake311"].workers.clear()
        stack.start("intake311")
        await eventually(ready, timeout=90, interval=0.5)

        own_broker.stop(kill=True)
        await eventually(lambda: _is(metric("citystat_broker_up"), 0.0), timeout=60, interval=0.5)
        own_broker.start()
        await eventually(lambda: _is(metric("citystat_broker_up"), 1.0), timeout=60, interval=0.5)
    finally:
        await api.aclose()


async def _is(value_coro, expected):
    return (await value_coro) == expected
