"""Every database failure is an outage (503 + Retry-After), never a 500: the classification is
tested with the exceptions the drivers really raise (a server refusing connections as PostgreSQL
does while it starts up or shuts down, a backend terminated by an administrator, a connection cut
mid-query, a SQLite file that cannot be opened), and through the apps of the services."""

from __future__ import annotations

import asyncio
import re

import asyncpg
import pytest
import sqlalchemy as sa

from citystat_common.db import create_engine
from citystat_common.errors import is_database_down
from citystat_common.fakepg import IN_RECOVERY, SHUTTING_DOWN, STARTING_UP, TOO_MANY_CLIENTS, RefusingPostgres
from citystat_common.outage import is_broker_down, is_infrastructure_down
from citystat_common.testing import (
    TEST_KEY_ENTRIES,
    TEST_KEYS,
    TcpProxy,
    app_client,
    auth,
    eventually,
    postgres_admin_url,
)


async def _error_of(url: str, statement: str = "SELECT 1") -> BaseException:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(statement))
    except Exception as exc:  # noqa: BLE001 - the error is what the test looks at
        return exc
    finally:
        await engine.dispose()
    raise AssertionError("no error")


def _pg() -> str:
    url = postgres_admin_url()
    if not url:
        pytest.skip("needs TEST_POSTGRES_URL")
    return url


@pytest.mark.integration  # a server on loopback that refuses as PostgreSQL does
@pytest.mark.parametrize("refusal", [STARTING_UP, SHUTTING_DOWN, IN_RECOVERY, TOO_MANY_CLIENTS])
async def test_a_server_that_refuses_connections_is_down(refusal):
    async with RefusingPostgres(refusal) as pg:
        through_sqlalchemy = await _error_of(pg.url())
        assert refusal[1] in str(through_sqlalchemy)
        assert is_database_down(through_sqlalchemy), repr(through_sqlalchemy)
        try:
            await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{pg.port}/postgres")
        except Exception as raw:  # noqa: BLE001 - raw from the driver, as a pool pre-ping raises it
            assert is_database_down(raw), repr(raw)
        else:
            raise AssertionError("connected to a refusing server")


async def test_a_closed_port_and_a_missing_sqlite_folder_are_down(tmp_path):
    from citystat_common.localbroker import free_port

    assert is_database_down(await _error_of(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x"))
    missing = await _error_of(f"sqlite+aiosqlite:///{tmp_path}/no-such-folder/x.db")
    assert "unable to open database file" in str(missing) and is_database_down(missing)


@pytest.mark.integration
async def test_terminated_backend_and_cut_connection_mid_query_are_down():
    admin = _pg()
    engine = create_engine(admin)
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar()
            query = asyncio.create_task(conn.execute(sa.text("SELECT pg_sleep(10)")))
            await asyncio.sleep(0.3)
            killer = await asyncpg.connect(re.sub(r"^postgresql\+asyncpg", "postgresql", admin))
            await killer.execute("SELECT pg_terminate_backend($1)", pid)
            await killer.close()
            with pytest.raises(Exception) as terminated:
                await query
        assert "terminating connection due to administrator command" in str(terminated.value)
        assert is_database_down(terminated.value), repr(terminated.value)
    finally:
        await engine.dispose()

    proxy, through_proxy = await TcpProxy.in_front_of(admin)
    engine = create_engine(through_proxy)
    try:
        async with engine.connect() as conn:
            query = asyncio.create_task(conn.execute(sa.text("SELECT pg_sleep(10)")))
            await asyncio.sleep(0.3)
            await proxy.cut()  # the connection is reset under the running query
            with pytest.raises(Exception) as cut:
                await query
        assert is_database_down(cut.value), repr(cut.value)
    finally:
        await engine.dispose()
        await proxy.cut()


async def test_bugs_and_bad_data_are_not_an_outage(tmp_path):
    for url in filter(None, [f"sqlite+aiosqlite:///{tmp_path}/x.db", postgres_admin_url()]):
        syntax = await _error_of(url, "SELEC 1")
        assert not is_database_down(syntax), repr(syntax)
        missing_table = await _error_of(url, "SELECT * FROM no_such_table")
        assert not is_database_down(missing_table), repr(missing_table)
    assert not is_database_down(ValueError("bad input")) and not is_database_down(KeyError("x"))
    assert not is_database_down(sa.exc.OperationalError("UPDATE t", {}, Exception("database is locked")))
    assert not is_infrastructure_down(RuntimeError("handler bug"))


def test_a_wrapped_outage_is_still_an_outage():
    try:
        try:
            raise ConnectionResetError("connection reset by peer")
        except ConnectionResetError as inner:
            raise RuntimeError("could not load the department") from inner
    except RuntimeError as outer:
        assert is_database_down(outer)
    assert is_database_down(ExceptionGroup("task group", [ValueError("x"), ConnectionRefusedError()]))


def test_broker_errors_are_infrastructure_but_not_database():
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

    for exc in (KafkaConnectionError("no broker"), KafkaTimeoutError()):
        assert is_broker_down(exc) and is_infrastructure_down(exc) and not is_database_down(exc)


# -- through the apps: every service, including the Open311 routes' own error documents ---------------


async def _all_503(client, requests):
    for method, path, kw in requests:
        r = await client.request(method, path, **kw)
        assert r.status_code == 503, (path, r.status_code, r.text)
        assert r.headers["retry-after"], path
        assert "unexpected" not in r.text and "Traceback" not in r.text


async def test_every_service_answers_503_through_a_postgres_crash_and_recovers(tmp_path):
    """PostgreSQL crashes under running apps: open connections are reset, new ones are refused with
    "the database system is starting up" (crash recovery). Every route answers 503 with Retry-After,
    the Open311 routes in their own error format too, and everything works again after recovery."""
    from citystat_common.fakepg import RecoveringPostgres
    from citystat_common.testing import fresh_database
    from directory.config import Settings as DirectorySettings
    from directory.main import create_app as directory_app
    from escalation.config import Settings as EscalationSettings
    from escalation.main import create_app as escalation_app
    from indicators.config import Settings as IndicatorsSettings
    from indicators.main import create_app as indicators_app
    from intake311.config import Settings as IntakeSettings
    from intake311.main import create_app as intake_app

    _pg()
    apps = {
        "directory": (directory_app, DirectorySettings, [
            ("GET", "/people", {}), ("POST", "/people", {"json": {"name": "X"}, "headers": auth("directory")}),
            ("GET", "/departments", {}),
        ]),
        "intake311": (intake_app, IntakeSettings, [
            ("GET", "/open311/v2/services.json", {}), ("GET", "/open311/v2/services.xml", {}),
            ("GET", "/open311/v2/requests.json", {}),
            ("POST", "/open311/v2/requests.json", {"data": {
                "api_key": TEST_KEYS["call_center"], "service_code": "POTHOLE", "lat": "39.95", "long": "-75.16"}}),
            ("GET", "/staff/requests", {"headers": auth("staff")}),
        ]),
        "indicators": (indicators_app, IndicatorsSettings, [("GET", "/indicators", {}), ("GET", "/dashboard", {})]),
        "escalation": (escalation_app, EscalationSettings, [("GET", "/tickets", {"headers": auth("staff")})]),
    }
    for name, (factory, settings_cls, requests) in apps.items():
        url = fresh_database("postgres", name, tmp_path)
        host, port = re.search(r"@([^:/]+):(\d+)/", url).groups()
        gate = RecoveringPostgres(host, int(port))
        await gate.restore()
        try:
            app = factory(settings_cls(database_url=re.sub(r"@[^/]+/", f"@127.0.0.1:{gate.port}/", url),
                                       api_keys=TEST_KEY_ENTRIES))
            async with app_client(app) as client:
                first = requests[0]
                assert (await client.request(first[0], first[1], **first[2])).status_code == 200, name
                await gate.crash()
                await _all_503(client, requests)
                ready = await client.get("/readyz")
                assert ready.status_code == 503 and any("database" in p for p in ready.json()["problems"]), ready.text
                gate.recover()

                async def healthy(first=first):
                    return (await client.request(first[0], first[1], **first[2])).status_code == 200

                await eventually(healthy, timeout=20)
        finally:
            await gate.cut()


async def test_backends_terminated_under_load_give_503_never_500(tmp_path):
    """An administrator (or a failover) terminates the service's connections again and again while
    requests run: each request succeeds or is a 503 with Retry-After, none is a 500."""
    from citystat_common.testing import fresh_database
    from directory.config import Settings
    from directory.main import create_app

    admin = _pg()
    url = fresh_database("postgres", "directory", tmp_path)
    database = url.rpartition("/")[2]
    killer = await asyncpg.connect(re.sub(r"^postgresql\+asyncpg", "postgresql", admin))
    statuses: list[int] = []
    try:
        async with app_client(create_app(Settings(database_url=url, api_keys=TEST_KEY_ENTRIES))) as client:
            async def load(i: int) -> None:
                for j in range(15):
                    if j % 2:
                        r = await client.post("/people", json={"name": f"P{i}-{j}"}, headers=auth("directory"))
                    else:
                        r = await client.get("/people")
                    statuses.append(r.status_code)
                    assert r.status_code in (200, 201, 503), r.text
                    if r.status_code == 503:
                        assert r.headers["retry-after"] and "database" in r.json()["detail"]

            async def terminate() -> int:
                killed = 0
                for _ in range(10):
                    killed += len(await killer.fetch(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                        database))
                    await asyncio.sleep(0.05)
                return killed

            results = await asyncio.gather(terminate(), *(load(i) for i in range(4)))
            assert results[0] > 0  # connections really were terminated under the load
            assert (await client.get("/people")).status_code == 200  # and it recovered by itself
    finally:
        await killer.close()
    assert 503 in statuses or results[0] > 0
