"""Through the real broker (Tansu): the outbox delivers request events, also after the broker was
down when the request came in; the worker keeps the local department copy from directory.changes,
accepts batch requests and sets the backlog gauges."""

import asyncio
import uuid

import sqlalchemy as sa
from intake311_helpers import POTHOLE, create, create_with_token, demo_catalog_database, post

from citystat_common.bus import ensure_topics, make_producer
from citystat_common.events import TOPIC_DIRECTORY, TOPIC_REQUESTS, DepartmentUpserted, make_event
from citystat_common.localbroker import LocalBroker, free_port
from citystat_common.testing import TEST_KEY_ENTRIES, app_client, auth, collect_events, eventually
from intake311 import metrics
from intake311.config import Settings
from intake311.main import create_app
from intake311.models import PLUMBING
from intake311.worker import build_worker


def _settings(db_url: str, bootstrap: str) -> Settings:
    # A consumer group per test: a new member of a group the last test left waits out its session.
    return Settings(consumer_group=f"intake311-{uuid.uuid4().hex[:8]}",
        database_url=db_url, api_keys=TEST_KEY_ENTRIES, kafka_bootstrap=bootstrap, directory_url="http://127.0.0.1:9",
        outbox_poll_interval=0.05, outbox_max_backoff=0.5, gauge_interval=0.2, batch_interval=0.2,
        consumer_retry_backoff=0.05,
    )


async def _outbox_rows(engine):
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(PLUMBING.outbox).order_by(PLUMBING.outbox.c.id))).all()


async def test_request_posted_while_broker_down_is_delivered_when_it_is_back(db_kind, tmp_path):
    broker = LocalBroker(free_port())  # not started: the broker is down
    settings = _settings(demo_catalog_database(db_kind, tmp_path), broker.bootstrap)
    async with app_client(create_app(settings)) as client:
        r = await post(client, POTHOLE)
        assert r.status_code == 201, r.text  # accepted although nothing can be published
        rid = r.json()[0]["service_request_id"]
    parts = build_worker(settings)
    stop = asyncio.Event()
    relay = asyncio.create_task(parts.relay.run(stop))
    try:
        # the relay tried and failed: the event waits in the outbox
        await eventually(lambda: _attempted(parts.engine), timeout=30)
        rows = await _outbox_rows(parts.engine)
        assert [row.sent_at for row in rows] == [None]
        broker.start()
        events = await collect_events(
            broker.bootstrap, TOPIC_REQUESTS, until=lambda evs: any(e.id == rows[0].event_id for e in evs), timeout=60
        )
        created = next(e for e in events if e.id == rows[0].event_id)
        assert created.type == "intake311.request.created" and created.subject == rid
        assert created.data["department_code"] == "STREETS" and created.data["expected_datetime"]
        await eventually(lambda: _all_sent(parts.engine), timeout=30)
    finally:
        stop.set()
        await relay
        await parts.engine.dispose()
        broker.close()


async def _attempted(engine) -> bool:
    return any(row.attempts > 0 for row in await _outbox_rows(engine))


async def _all_sent(engine) -> bool:
    rows = await _outbox_rows(engine)
    return bool(rows) and all(row.sent_at is not None for row in rows)


async def test_worker_through_the_real_broker(db_kind, tmp_path, broker):
    settings = _settings(demo_catalog_database(db_kind, tmp_path), broker.bootstrap)
    await ensure_topics(broker.bootstrap, settings.topic_partitions)
    parts = build_worker(settings)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c(stop)) for c in parts.components()]
    app = create_app(settings)
    try:
        async with app_client(app) as client:
            # directory.changes -> the local department copy
            dept = DepartmentUpserted(department_id="dept-vector", code="VECTOR", name="Vector Control")
            producer = make_producer(broker.bootstrap, False)
            await producer.start()
            try:
                env = make_event(dept, subject=dept.department_id)
                await producer.send_and_wait(TOPIC_DIRECTORY, env.to_bytes(), key=env.subject.encode())
            finally:
                await producer.stop()

            async def known() -> bool:
                r = await client.get("/admin/departments", headers=auth("admin"))
                return any(d["code"] == "VECTOR" for d in r.json())

            await eventually(known, timeout=60)
            r = await client.post("/admin/services", headers=auth("admin"), json={
                "service_code": "BEES", "service_name": "Bee swarm", "department_code": "VECTOR",
                "service_level": {"amount": 1, "unit": "business_days"}})
            assert r.status_code == 201, r.text

            # request events on 311.requests, keyed by the request id, with what indicators need
            rid, token = await create_with_token(client, {"service_code": "BEES", "address_string": "Rittenhouse Sq"})
            closed = await client.post(f"/staff/requests/{rid}/close", json={"reason": "fixed"}, headers=auth("call_center"))
            assert closed.status_code == 200
            fb = await client.post(f"/requests/{rid}/feedback", json={"score": 5, "feedback_token": token},
                                   headers=auth("call_center"))
            assert fb.status_code == 201
            # request ids restart with each test database: follow this database's event ids
            ids = [row.event_id for row in await _outbox_rows(parts.engine) if row.key == rid]
            assert len(ids) == 3
            events = await collect_events(
                broker.bootstrap, TOPIC_REQUESTS, until=lambda evs: set(ids) <= {e.id for e in evs}, timeout=60,
            )
            mine = sorted((e for e in events if e.id in ids), key=lambda e: ids.index(e.id))
            assert all(e.subject == rid for e in mine)
            assert [e.type for e in mine] == [
                "intake311.request.created", "intake311.request.closed", "intake311.request.feedback"]
            assert mine[0].data["department_code"] == "VECTOR" and mine[0].data["channel"] == "phone"
            assert mine[1].data["closure_reason"] == "fixed" and mine[1].data["closed_datetime"]
            assert mine[2].data["score"] == 5

            # batch requests are accepted by the worker and resolved through their token
            r = await post(client, {"service_code": "TREE_PLANTING", "address_string": "12 Pine St"})
            token = r.json()[0]["token"]

            async def resolved() -> bool:
                doc = (await client.get(f"/tokens/{token}.json")).json()
                return "service_request_id" in doc[0]

            await eventually(resolved, timeout=30)

            # the gauges come from the database
            await create(client)
            await eventually(lambda: metrics.OPEN_BACKLOG.labels("STREETS")._value.get() == 1, timeout=30)
            await eventually(lambda: metrics.OPEN_BACKLOG.labels("VECTOR")._value.get() == 0, timeout=30)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await parts.engine.dispose()
