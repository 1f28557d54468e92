"""Authorization matrix over every write route of every service: no key → 401, a key without
the route's scope → 403, an admin key → neither; reads of non-personal data need no key.
Open311 routes answer 403 for a missing key, as the GeoReport spec says."""

import importlib

import pytest

from citystat_common.stack import available_services
from citystat_common.testing import TEST_KEY_ENTRIES, app_client, auth, fresh_database

WRITE = {"POST", "PUT", "PATCH", "DELETE"}
# Writes that are open by design (documented): none besides Open311's own key handling.
OPEN311_PREFIXES = ("/requests.", "/open311/v2/requests.")
# Writes a person makes about themself: no key is anybody, so even an admin key is refused (403),
# and a person's bearer token is what passes (tests/directory/test_people.py).
PERSON_ONLY = {("PUT", "/me/notify")}


def _app(service, url):
    main = importlib.import_module(f"{service}.main")
    config = importlib.import_module(f"{service}.config")
    settings = config.Settings(database_url=url, api_keys=TEST_KEY_ENTRIES, rate_limit_per_minute=0)
    return main.create_app(settings)


def _fill(path: str) -> str:
    import re

    return re.sub(r"\{([^}]+)\}", lambda m: "json" if m.group(1) == "fmt" else "X1", path)


@pytest.mark.parametrize("service", available_services())
async def test_every_write_route_needs_its_scope(service, tmp_path):
    app = _app(service, fresh_database("sqlite", service, tmp_path))
    routes = [
        (method.upper(), path) for path, ops in app.openapi()["paths"].items()
        for method in ops if method.upper() in WRITE
    ]
    assert routes, f"{service} has no write routes?"
    problems = []
    async with app_client(app) as client:
        for method, path in routes:
            url = _fill(path)
            kw = {"json": {}} if method != "DELETE" else {}
            none = await client.request(method, url, **kw)
            public = await client.request(method, url, headers=auth("public"), **kw)
            admin = await client.request(method, url, headers=auth("admin"), **kw)
            expected_none = 403 if path.startswith(OPEN311_PREFIXES) else 401
            if none.status_code != expected_none:
                problems.append(f"{method} {path} without a key: {none.status_code} (want {expected_none})")
            if public.status_code != 403:
                problems.append(f"{method} {path} with a scopeless key: {public.status_code} (want 403)")
            if (method, path) in PERSON_ONLY:
                if admin.status_code != 403 or "not a person" not in admin.text:
                    problems.append(f"{method} {path} with an admin key: {admin.status_code} (want 403: not a person)")
            elif admin.status_code in (401, 403) or admin.status_code >= 500:
                problems.append(f"{method} {path} with an admin key: {admin.status_code}")
    assert not problems, "\n".join(problems)
