"""Test helpers every service's tests share: fresh databases, apps, clients, a real broker.

Nothing here mocks the bus: integration tests run the Tansu broker process.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from citystat_common.auth import DEMO_CHANNELS, DEMO_ROLES
from citystat_common.events import Envelope, parse_event
from citystat_common.migrate import upgrade

# Plain test keys, one per demo role: headers={"X-API-Key": TEST_KEYS["staff"]}.
TEST_KEYS = {role: f"test-key-{role}" for role in DEMO_ROLES}
TEST_KEY_ENTRIES = [
    {"name": role, "key": key, "scopes": DEMO_ROLES[role], "channel": DEMO_CHANNELS.get(role)}
    for role, key in TEST_KEYS.items()
]


def auth(role: str) -> dict[str, str]:
    return {"X-API-Key": TEST_KEYS[role]}


def midday_timezone(now: datetime | None = None) -> str:
    """A fixed-offset zone in which ``now`` is between 12:00 and 13:00 on its UTC date.

    Tests that place events hours before or after the wall clock and then read one day's or
    one month's figures would otherwise fail whenever the run starts near the city's midnight
    (at 00:02 in New York the burst of "three hours ago" belongs to yesterday). Running the
    city's clock at midday keeps offsets of up to eleven hours either way on the same local date,
    and that date is the UTC date.
    """
    offset = 12 - (now or datetime.now(UTC)).astimezone(UTC).hour  # hours east of UTC: -11 .. +12
    return f"Etc/GMT{-offset:+d}"  # the tz database's Etc signs are inverted (Etc/GMT-5 is UTC+5)


def postgres_admin_url() -> str | None:
    return os.environ.get("TEST_POSTGRES_URL") or None


def _asyncpg_dsn(url: str) -> str:
    return re.sub(r"^postgresql\+asyncpg://", "postgresql://", url)


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def _pg_exec(admin_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(admin_url))
    try:
        for stmt in statements:
            await conn.execute(stmt)
    finally:
        await conn.close()


def _run(coro: Any) -> None:
    """Run a coroutine to completion from sync code, even when called inside a running loop."""
    from citystat_common.migrate import _run_coroutine

    _run_coroutine(coro)


_templates: dict[str, str] = {}
_created: set[str] = set()  # PostgreSQL databases made by this process: the only ones it drops


def fresh_database(kind: str, package: str, tmp_path: Any) -> str:
    """A migrated, empty database for one test: a copy of a migrated SQLite file, or a PostgreSQL
    database cloned from a migrated template (migrating once per package keeps the suite fast)."""
    if kind == "sqlite":
        path = f"{tmp_path}/{package}-{uuid.uuid4().hex[:8]}.db"
        _copy_sqlite(_sqlite_template(package), path)
        return f"sqlite+aiosqlite:///{path}"
    admin = postgres_admin_url()
    if not admin:
        raise RuntimeError("TEST_POSTGRES_URL is not set")
    if package not in _templates:
        template = f"tmpl_{package}_{uuid.uuid4().hex[:8]}"
        _run(_pg_exec(admin, f'DROP DATABASE IF EXISTS "{template}"', f'CREATE DATABASE "{template}"'))
        _created.add(template)
        upgrade(package, _with_db(admin, template))
        _templates[package] = template
    name = f"t_{package}_{uuid.uuid4().hex[:10]}"
    _run(_pg_exec(admin, f'CREATE DATABASE "{name}" TEMPLATE "{_templates[package]}"'))
    _created.add(name)
    return _with_db(admin, name)


_sqlite_templates: dict[str, str] = {}


def _sqlite_template(package: str) -> str:
    """A SQLite file migrated to head once per package and process; each test gets a copy
    (a copy takes milliseconds, ``alembic upgrade head`` from scratch ~0.3-1 s)."""
    if package not in _sqlite_templates:
        import atexit
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix=f"citystat-tmpl-{package}-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = f"{folder}/{package}.db"
        upgrade(package, f"sqlite+aiosqlite:///{path}")
        _sqlite_templates[package] = path
    return _sqlite_templates[package]


def _copy_sqlite(source: str, target: str) -> None:
    """SQLite's own backup API: a consistent copy whatever journal mode the source is in."""
    import sqlite3

    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


_seeded: dict[tuple[str, str, str], str] = {}


async def seeded_database(
    kind: str, package: str, tmp_path: Any, name: str, seed: Callable[[str], Awaitable[None]],
) -> str:
    """A migrated database of ``package`` holding what ``seed(url)`` wrote, for one test: the seed
    runs once per process (per kind, package and ``name``) and each test gets its own copy, as
    ``fresh_database`` gives copies of the migrated schema. For fixtures whose every test starts
    from the same data (escalation's demo city in the directory: an import per test took 1-4 s)."""
    key = (kind, package, name)
    if key not in _seeded:
        import atexit
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix=f"citystat-seed-{package}-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        url = fresh_database(kind, package, folder)
        await seed(url)  # the seed closes its engines: a PostgreSQL template must have no sessions
        _seeded[key] = url
    source = _seeded[key]
    if kind == "sqlite":
        path = f"{tmp_path}/{package}-{uuid.uuid4().hex[:8]}.db"
        _copy_sqlite(source.split("///", 1)[1], path)
        return f"sqlite+aiosqlite:///{path}"
    admin = postgres_admin_url()
    assert admin
    copy = f"t_{package}_{uuid.uuid4().hex[:10]}"
    template = source.rpartition("/")[2]
    for attempt in range(50):  # a backend of the seed's closed sessions may take a moment to go
        try:
            await _pg_exec(admin, f'CREATE DATABASE "{copy}" TEMPLATE "{template}"')
            break
        except asyncpg.ObjectInUseError:
            if attempt == 49:
                raise
            await asyncio.sleep(0.1)
    _created.add(copy)
    return _with_db(admin, copy)


def empty_database(kind: str, tmp_path: Any) -> str:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/empty-{uuid.uuid4().hex[:8]}.db"
    admin = postgres_admin_url()
    assert admin
    name = f"e_{uuid.uuid4().hex[:10]}"
    _run(_pg_exec(admin, f'CREATE DATABASE "{name}"'))
    _created.add(name)
    return _with_db(admin, name)


def drop_test_databases() -> None:
    """Drop every database this run created (t_*, e_*, tmpl_*), and only those: test runs that
    share the server (several sessions at once) must not drop each other's databases."""
    admin = postgres_admin_url()
    if not admin or not _created:
        return

    async def run() -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(admin))
        try:
            rows = await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname ~ '^(t|e|tmpl)_[a-z0-9]+_?[a-z0-9]*$'"
            )
        finally:
            await conn.close()
        names = [r["datname"] for r in rows if r["datname"] in _created]
        # Each DROP DATABASE waits for a checkpoint; drops on several connections at once share
        # them (one by one, the suite's ~200 databases took ~15-30 s of its end).
        await asyncio.gather(*(_drop_some(admin, names[i::DROP_CONNECTIONS]) for i in range(DROP_CONNECTIONS)))

    _run(run())


DROP_CONNECTIONS = 16


async def _drop_some(admin: str, names: list[str]) -> None:
    if not names:
        return
    conn = await asyncpg.connect(_asyncpg_dsn(admin))
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@asynccontextmanager
async def app_client(app: FastAPI, base_url: str = "http://testserver") -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


async def collect_events(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Envelope]], bool],
    timeout: float = 20.0,
    group_id: str | None = None,
    raw_sink: list[bytes] | None = None,
) -> list[Envelope]:
    """Read ``topic`` from the earliest offset until ``until(events)`` holds (never 'latest': Tansu's
    end offsets are approximate), or fail after ``timeout`` seconds."""
    # No consumer group by default: assigning the partitions directly skips the group join.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id, auto_offset_reset="earliest", enable_auto_commit=False,
    )
    await consumer.start()
    if group_id:
        consumer.subscribe([topic])
    else:
        partitions = None
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:  # the topic may appear only once a relay recreates it
            client = consumer._client  # no public call refreshes metadata for an unsubscribed topic
            await client.add_topic(topic)
            await client.force_metadata_update()
            partitions = client.cluster.partitions_for_topic(topic)
            if partitions:
                break
            await asyncio.sleep(0.1)
        if not partitions:
            await consumer.stop()
            raise AssertionError(f"topic {topic} does not exist")
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        await consumer.seek_to_beginning()
    events: list[Envelope] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=300)
            for records in batches.values():
                for record in records:
                    if raw_sink is not None:
                        raw_sink.append(record.value)
                    env, _ = parse_event(record.value)
                    events.append(env)
            if until(events):
                return events
        raise AssertionError(f"timed out after {timeout}s on {topic}; got {[e.type for e in events]}")
    finally:
        await consumer.stop()


async def raw_messages(bootstrap: str, topic: str, count: int) -> list[bytes]:
    """The first ``count`` messages of partition 0 of ``topic``, as bytes (a dead-letter topic holds
    what could not be parsed, so nothing is parsed here); fails if fewer arrive."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_beginning()
        got: list[bytes] = []
        for _ in range(100):
            batch = await consumer.getmany(timeout_ms=200)
            got += [r.value for records in batch.values() for r in records]
            if len(got) >= count:
                return got
        raise AssertionError(f"only {len(got)} of {count} messages on {topic}")
    finally:
        await consumer.stop()


async def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll an async or sync check until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        last = result
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


class TcpProxy:
    """A loopback TCP proxy to a real server, for outage tests: ``cut()`` closes the listener and
    every open connection (clients then get 'connection refused'); ``restore()`` listens again."""

    def __init__(self, target_host: str, target_port: int, port: int | None = None):
        from citystat_common.localbroker import free_port

        self.target = (target_host, target_port)
        self.port = port or free_port()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        self._writers |= {client_w, server_w}
        await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))
        self._writers -= {client_w, server_w}

    @classmethod
    async def in_front_of(cls, url: str) -> tuple[TcpProxy, str]:
        """A listening proxy to the server of a database URL, and the same URL through the proxy."""
        import re

        found = re.search(r"@([^:/]+):(\d+)/", url)
        if found is None:
            raise ValueError(f"no host:port in {url!r}")
        proxy = cls(found.group(1), int(found.group(2)))
        await proxy.restore()
        return proxy, re.sub(r"@[^/]+/", f"@127.0.0.1:{proxy.port}/", url, count=1)

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in list(self._writers):
            w.close()
        self._writers.clear()


class ThreadServer:
    """A real uvicorn server for an app on a free loopback port, in a thread (browser and fuzz tests)."""

    def __init__(self, app: FastAPI):
        import uvicorn

        from citystat_common.localbroker import free_port

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadServer:
        import threading

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def fuzz_openapi(
    base_url: str, *, headers: dict[str, str] | None = None, max_examples: int = 25,
    exclude: Callable[[str], bool] = lambda label: False,
) -> list[str]:
    """Schemathesis over every operation of a running service: no 5xx, and every documented
    response conforms to its schema. Returns the failures (empty when all is well)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid operation raises here: a failure too
        if exclude(operation.label) or operation.label == "GET /readyz":  # 503 is its documented answer
            continue

        @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            case.call_and_validate(base_url=base_url, headers=headers or {},
                                   checks=[not_a_server_error, response_schema_conformance])

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected and reported together
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    return failures