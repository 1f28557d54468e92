"""Database outage: PostgreSQL refuses connections for a while. The service answers 503 with a
clear problem document (not a hang, not a 500 trace), /readyz goes red, and it recovers by itself."""


import pytest

from citystat_common.testing import TEST_KEY_ENTRIES, TcpProxy, app_client, auth, eventually, fresh_database
from directory.config import Settings
from directory.main import create_app


async def test_database_outage_gives_503_and_recovers(tmp_path):
    from citystat_common.testing import postgres_admin_url

    if not postgres_admin_url():
        pytest.skip("needs TEST_POSTGRES_URL (a real PostgreSQL server to cut off)")
    url = fresh_database("postgres", "directory", tmp_path)
    proxy, proxied = await TcpProxy.in_front_of(url)
    settings = Settings(database_url=proxied, api_keys=TEST_KEY_ENTRIES)
    async with app_client(create_app(settings)) as client:
        assert (await client.post("/people", json={"name": "Before"}, headers=auth("directory"))).status_code == 201
        await proxy.cut()
        for method, path, kw in [("GET", "/people", {}), ("POST", "/people", {"json": {"name": "During"}, "headers": auth("directory")})]:
            r = await client.request(method, path, **kw)
            assert r.status_code == 503, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert "database" in r.json()["detail"] and "Traceback" not in r.text
            assert r.headers["retry-after"]
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and any("database" in p for p in ready.json()["problems"])
        await proxy.restore()

        async def healthy_again():
            return (await client.get("/people", params={"q": "before"})).status_code == 200

        await eventually(healthy_again, timeout=30)
        assert (await client.post("/people", json={"name": "After"}, headers=auth("directory"))).status_code == 201
    await proxy.cut()
