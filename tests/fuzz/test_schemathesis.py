"""Schemathesis against each service's OpenAPI schema, with a real server and demo data: zero
5xx, and every documented response conforms to its schema. With an admin key (so writes get
past auth and into validation and the domain) and without a key. intake311 has its own run in
tests/intake311 (its Open311 routes parse their own input)."""

import httpx
import pytest

from citystat_common.demo import directory_rows
from citystat_common.testing import TEST_KEY_ENTRIES, ThreadServer, auth, fresh_database, fuzz_openapi


def _app(service, url):
    import importlib

    main = importlib.import_module(f"{service}.main")
    config = importlib.import_module(f"{service}.config")
    settings = config.Settings(database_url=url, api_keys=TEST_KEY_ENTRIES, rate_limit_per_minute=0)
    return main.create_app(settings)


@pytest.mark.parametrize("service", ["directory", "indicators", "escalation"])
def test_api_fuzz(service, tmp_path):
    with ThreadServer(_app(service, fresh_database("sqlite", service, tmp_path))) as server:
        if service == "directory":
            httpx.post(f"{server.url}/import", json={"rows": directory_rows()}, headers=auth("admin"), timeout=30).raise_for_status()
        for who in ("admin", None):
            failures = fuzz_openapi(server.url, headers=auth(who) if who else None, max_examples=25)
            assert not failures, "\n\n".join(failures)
