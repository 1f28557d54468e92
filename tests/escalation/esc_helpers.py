"""Escalation test harness: the real directory app (seeded with the demo city) behind an
ASGI transport, the escalation app, consumer runner and scheduler on one controllable clock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager

from citystat_common.consumer import ConsumerRunner
from citystat_common.db import create_engine, session_factory
from citystat_common.demo import directory_rows
from citystat_common.events import IndicatorBreached, IndicatorRecovered, IndicatorStatusChanged, make_event
from citystat_common.localbroker import free_port
from citystat_common.runtime import make_consumer
from citystat_common.testing import TEST_KEY_ENTRIES, app_client, auth, seeded_database
from citystat_common.uow import UnitOfWork
from directory.config import Settings as DirectorySettings
from directory.main import create_app as create_directory_app
from escalation.config import Settings
from escalation.deps import Deps
from escalation.handlers import TOPICS, make_handlers
from escalation.main import create_app
from escalation.models import PLUMBING
from escalation.routing import CircuitBreaker, DirectoryClient
from escalation.scheduler import EscalationScheduler

NY = ZoneInfo("America/New_York")
OPS = auth("ops")


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY).astimezone(UTC)


class Clock:
    """A controllable clock: ``clock()`` is now; ``clock.set(...)`` / ``clock.advance(...)`` move it."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when

    def advance(self, **kw: float) -> None:
        self.now = self.now + timedelta(**kw)


def person(department: str, role: str) -> str:
    return next(r["person_name"] for r in directory_rows() if r["department_code"] == department and r["role"] == role)


def closed_port_url() -> str:
    # free_port() reserves the port: no other test worker is handed it and starts a server there
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


async def import_demo_city(database_url: str) -> None:
    """The demo city through the directory's own /import (its rows, audit log and outbox events)."""
    settings = DirectorySettings(database_url=database_url, api_keys=TEST_KEY_ENTRIES)
    async with LifespanManager(create_directory_app(settings)) as manager:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://directory") as client:
            r = await client.post("/import", json={"rows": directory_rows()}, headers=auth("directory"))
            assert r.status_code == 200, r.text


@pytest.fixture
async def directory(db_kind, tmp_path):
    """The real directory app, seeded with the demo city; yields (client, transport, database_url).
    Each test has its own copy of a directory database the import filled once per run."""
    url = await seeded_database(db_kind, "directory", tmp_path, "demo-city", import_demo_city)
    settings = DirectorySettings(database_url=url, api_keys=TEST_KEY_ENTRIES)
    async with LifespanManager(create_directory_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://directory") as client:
            yield SimpleNamespace(client=client, transport=transport, database_url=settings.database_url)


@dataclass
class Harness:
    settings: Settings
    clock: Clock
    engine: Any
    deps: Deps
    runner: ConsumerRunner
    client: httpx.AsyncClient
    offsets: int = 0
    extra_engines: list[Any] = field(default_factory=list)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(session_factory(self.engine), PLUMBING)

    def scheduler(self, engine: Any | None = None) -> EscalationScheduler:
        sessions = session_factory(engine or self.engine)
        return EscalationScheduler(lambda: UnitOfWork(sessions, PLUMBING), self.deps, batch=10)

    def record(self, envelope: Any, topic: str = "indicators.status") -> Any:
        self.offsets += 1
        return SimpleNamespace(topic=topic, partition=0, offset=self.offsets, key=envelope.subject.encode(),
                               value=envelope.to_bytes(), headers=[])

    async def deliver(self, envelope: Any, topic: str = "indicators.status") -> str:
        return await self.runner.process(self.record(envelope, topic))

    async def rows(self, stmt: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(stmt)).all())

    async def outbox_types(self, subject: str | None = None, *, snapshots: bool = False) -> list[str]:
        """The lifecycle events in the outbox; ``snapshots``: with the ticket snapshots
        (escalation.ticket.updated, one per change, tested in test_escalation_ticket_feed)."""
        ob = PLUMBING.outbox
        stmt = sa.select(ob.c.event_type).order_by(ob.c.id)
        if not snapshots:
            stmt = stmt.where(ob.c.event_type != "escalation.ticket.updated")
        if subject:
            stmt = stmt.where(ob.c.key == subject)
        return [r[0] for r in await self.rows(stmt)]

    async def outbox_events(self, subject: str, event_type: str) -> list[Any]:
        """The payloads of ``event_type`` for ``subject``, in outbox order."""
        from citystat_common.events import parse_event

        ob = PLUMBING.outbox
        rows = await self.rows(sa.select(ob.c.payload).where(ob.c.key == subject, ob.c.event_type == event_type)
                               .order_by(ob.c.id))
        return [parse_event(bytes(r[0]))[1] for r in rows]

    async def ticket(self, ticket_id: str) -> dict[str, Any]:
        r = await self.client.get(f"/tickets/{ticket_id}")
        assert r.status_code == 200, r.text
        return r.json()

    async def tickets(self, **params: Any) -> list[dict[str, Any]]:
        r = await self.client.get("/tickets", params={"page_size": 500, **params})
        assert r.status_code == 200, r.text
        return r.json()["items"]

    async def feed_directory_changes(self, directory_database_url: str) -> int:
        """Replay the directory's outbox (its directory.changes events) through our consumer."""
        engine = create_engine(directory_database_url)
        try:
            async with engine.connect() as conn:
                ob = PLUMBING.outbox
                rows = (await conn.execute(sa.select(ob.c.payload).order_by(ob.c.id))).all()
        finally:
            await engine.dispose()
        for (payload,) in rows:
            self.offsets += 1
            rec = SimpleNamespace(topic="directory.changes", partition=0, offset=self.offsets, key=b"k",
                                  value=payload, headers=[])
            await self.runner.process(rec)
        return len(rows)


def breach(
    *, indicator: str = "ind-1", department: str = "STREETS", tag: str = "technology", episode: str = "ep-1",
    magnitude: float = 0.3, critical: bool = False, name: str | None = None, period: str = "2026-10",
) -> Any:
    payload = IndicatorBreached(
        indicator_id=indicator, indicator_code=indicator.upper(), indicator_name=name or f"Indicator {indicator}",
        department_code=department, period=period, period_start="2026-10-01", period_end="2026-10-31",
        previous_status="green", status="red", value=130.0, target=100.0, basis="target", magnitude=magnitude,
        kind="outcome", critical=critical, function_tag=tag, unit="days", episode_id=episode,
    )
    return make_event(payload, subject=indicator)


def recovery(*, indicator: str = "ind-1", department: str = "STREETS", episode: str = "ep-1") -> Any:
    payload = IndicatorRecovered(
        indicator_id=indicator, indicator_code=indicator.upper(), indicator_name=f"Indicator {indicator}",
        department_code=department, period="2026-11", period_start="2026-11-01", period_end="2026-11-30",
        previous_status="red", status="green", value=95.0, target=100.0, basis="target", magnitude=0.0,
        kind="outcome", function_tag="technology", episode_id=episode,
    )
    return make_event(payload, subject=indicator)


def status_changed(
    *, indicator: str = "ind-1", department: str = "STREETS", status: str = "yellow", previous: str = "red",
    overridden: bool = True, reason: str | None = "Data lag: the October backlog is a reporting artefact",
    by: str | None = "Dana Whitfield", until: datetime | None = None, computed: str | None = "red",
    episode: str | None = "ep-1", period: str = "2026-10",
) -> Any:
    payload = IndicatorStatusChanged(
        indicator_id=indicator, indicator_code=indicator.upper(), indicator_name=f"Indicator {indicator}",
        department_code=department, period=period, period_start="2026-10-01", period_end="2026-10-31",
        previous_status=previous, status=status, value=130.0, target=100.0, basis="target", magnitude=0.3,
        overridden=overridden, override_reason=reason if overridden else None, kind="outcome", function_tag="technology",
        override_by=by if overridden else None, override_expires_at=until if overridden else None,
        computed_status=computed, episode_id=episode,
    )
    return make_event(payload, subject=indicator)


def esc_settings(db_factory: Any, **kw: Any) -> Settings:
    return Settings(database_url=db_factory("escalation"), api_keys=TEST_KEY_ENTRIES,
                    consumer_group=f"escalation-test-{uuid.uuid4().hex[:8]}", **kw)


async def make_harness(settings: Settings, clock: Clock, transport: httpx.AsyncBaseTransport | None,
                       directory_url: str | None = None):  # type: ignore[no-untyped-def]
    if directory_url:
        settings = settings.model_copy(update={"directory_url": directory_url})
    engine = create_engine(settings.database_url)
    directory = DirectoryClient(settings.directory_url, timeout=settings.directory_timeout,
                                retries=settings.directory_retries,
                                breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_reset_seconds),
                                transport=transport)
    deps = Deps.build(settings, directory, clock)
    runner = make_consumer(settings, engine, PLUMBING, group_id=settings.consumer_group, topics=TOPICS,
                           handlers=make_handlers(deps))
    runner.retry_backoff = 0.01
    app = create_app(settings, directory_transport=transport, clock=clock, check_worker=False)
    return engine, deps, runner, app


@pytest.fixture
def clock() -> Clock:
    return Clock(ny(2026, 11, 23, 10, 0))  # a Monday, 10:00 in New York


@pytest.fixture
async def harness(db_factory, directory, clock):
    """Escalation wired to the live directory app."""
    settings = esc_settings(db_factory)
    engine, deps, runner, app = await make_harness(settings, clock, directory.transport, "http://directory")
    async with app_client(app) as client:
        h = Harness(settings=settings, clock=clock, engine=engine, deps=deps, runner=runner, client=client)
        yield h
    await deps.directory.aclose()
    await engine.dispose()


@pytest.fixture
async def harness_down(db_factory, clock):
    """Escalation whose directory refuses connections."""
    settings = esc_settings(db_factory, directory_url=closed_port_url(), directory_timeout=0.5)
    engine, deps, runner, app = await make_harness(settings, clock, None)
    async with app_client(app) as client:
        h = Harness(settings=settings, clock=clock, engine=engine, deps=deps, runner=runner, client=client)
        yield h
    await deps.directory.aclose()
    await engine.dispose()


async def add_person(directory: Any, name: str, title: str) -> str:
    """A new person in the real directory; returns their id."""
    r = await directory.client.post("/people", json={"name": name, "title": title}, headers=auth("directory"))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def demo_email(department: str, role: str) -> str:
    return next(r["person_email"] for r in directory_rows() if r["department_code"] == department and r["role"] == role)


async def seed_people(h: Harness, directory: Any, *, notify: dict[str, str] | None = None) -> dict[str, str]:
    """Escalation's copy of the directory as the directory's events make it: the senior teams, and
    every person with their email and notification mode (``directory.person.upserted``).
    Returns {email: person_id}."""
    from citystat_common.events import PersonUpserted

    await h.feed_directory_changes(directory.database_url)
    r = await directory.client.get("/people", params={"page_size": 500}, headers=auth("staff"))
    assert r.status_code == 200, r.text
    ids: dict[str, str] = {}
    for p in r.json()["items"]:
        email = (p.get("email") or "").lower() or None
        mode = (notify or {}).get(email or "", p.get("notify") or "immediate")
        await h.deliver(make_event(PersonUpserted(person_id=p["id"], name=p["name"], title=p.get("title"),
                                                  active=p["active"], email=email, notify=mode),  # type: ignore[arg-type]
                                   subject=p["id"]), topic="directory.changes")
        if email:
            ids[email] = p["id"]
    return ids
