"""What the operator sees blames the component that failed: a database outage shows in
citystat_database_up and leaves citystat_broker_up alone; a broker outage shows in broker_up even
when no event is waiting; /readyz names a silent relay and reports the relay's broker resets."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from citystat_common import metrics
from citystat_common.db import create_engine
from citystat_common.localbroker import LocalBroker, free_port
from citystat_common.outbox import OutboxRelay
from citystat_common.testing import (
    TEST_KEY_ENTRIES,
    TcpProxy,
    app_client,
    eventually,
    fresh_database,
    postgres_admin_url,
)
from directory.config import Settings
from directory.main import create_app
from directory.models import PLUMBING


def _gauge(g, service: str) -> float:
    return g.labels(service)._value.get()


async def test_a_database_outage_is_not_a_broker_outage(broker, tmp_path):
    if not postgres_admin_url():
        pytest.skip("needs TEST_POSTGRES_URL (a real PostgreSQL server to cut off)")
    url = fresh_database("postgres", "directory", tmp_path)
    proxy, through_proxy = await TcpProxy.in_front_of(url)
    engine = create_engine(through_proxy)
    service = f"sig-{uuid.uuid4().hex[:6]}"
    relay = OutboxRelay(service=service, engine=engine, tables=PLUMBING, bootstrap=broker.bootstrap, max_backoff=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await eventually(lambda: _gauge(metrics.BROKER_UP, service) == 1 and _gauge(metrics.DATABASE_UP, service) == 1,
                         timeout=30)
        await proxy.cut()
        await eventually(lambda: _gauge(metrics.DATABASE_UP, service) == 0, timeout=30)
        assert _gauge(metrics.BROKER_UP, service) == 1  # the broker did not fail
        await proxy.restore()
        await eventually(lambda: _gauge(metrics.DATABASE_UP, service) == 1, timeout=30)
    finally:
        stop.set()
        await task
        await engine.dispose()
        await proxy.cut()


async def test_an_idle_relay_reports_a_broker_outage(db_factory, tmp_path):
    b = LocalBroker(free_port(), log_path=tmp_path / "tansu.log")
    b.start()
    engine = create_engine(db_factory("directory"))
    service = f"idle-{uuid.uuid4().hex[:6]}"
    relay = OutboxRelay(service=service, engine=engine, tables=PLUMBING, bootstrap=b.bootstrap, max_backoff=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await eventually(lambda: _gauge(metrics.BROKER_UP, service) == 1, timeout=30)
        b.stop(kill=True)  # nothing is waiting in the outbox: no publish fails to tell
        await eventually(lambda: _gauge(metrics.BROKER_UP, service) == 0, timeout=30)
        b.start()
        await eventually(lambda: _gauge(metrics.BROKER_UP, service) == 1, timeout=30)
    finally:
        stop.set()
        await task
        await engine.dispose()
        b.close()


async def test_readyz_names_a_silent_relay_and_reports_its_resets(db_factory, broker):
    url = db_factory("directory")
    settings = Settings(database_url=url, api_keys=TEST_KEY_ENTRIES, kafka_bootstrap=broker.bootstrap,
                        readiness_checks_worker=True)
    engine = create_engine(url)
    relay = OutboxRelay(service="directory", engine=engine, tables=PLUMBING, bootstrap=broker.bootstrap)
    stop = asyncio.Event()
    try:
        async with app_client(create_app(settings)) as client:
            r = await client.get("/readyz")
            assert r.status_code == 503 and "outbox relay has not reported" in r.json()["problems"]
            task = asyncio.create_task(relay.run(stop))

            async def ready():
                r = await client.get("/readyz")
                return r.json() if r.status_code == 200 else None

            body = await eventually(ready, timeout=30)
            assert body["relay"]["broker_resets"] == 0 and "backlog" in body["relay"]
            stop.set()  # the worker stops: within a few of its 2-s reports, /readyz says so
            await task

            async def silent():
                r = await client.get("/readyz")
                return r.status_code == 503 and any("outbox relay silent" in p for p in r.json()["problems"])

            await eventually(silent, timeout=30)
    finally:
        stop.set()
        await engine.dispose()
