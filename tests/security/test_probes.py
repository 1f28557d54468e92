"""Probes on every service: SQL injection and path traversal in every string parameter give a
4xx (or a harmless 200) and change nothing; personal data (the seeded emails and phones) never
appears in a response to a caller without the staff scope."""

import importlib
import re

import pytest

from citystat_common.demo import directory_rows
from citystat_common.stack import available_services
from citystat_common.testing import TEST_KEY_ENTRIES, TEST_KEYS, app_client, auth, fresh_database

PROBES = ["' OR '1'='1", "1; DROP TABLE outbox;--", "../../../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%00", "<script>x</script>"]
EMAILS = [r["person_email"] for r in directory_rows()]
PHONES = [r["person_phone"] for r in directory_rows()]
RESIDENT = {"email": "resident.private@mail.example.org", "phone": "+1 215 555 0199", "first_name": "Zelda",
            "last_name": "Privateperson", "device_id": "device-secret-42", "account_id": "acct-secret-77"}


def _database(service, tmp_path):
    """A migrated database; intake311's with the demo catalog (migrations seed none since 0021)."""
    if service == "intake311":
        from intake311_helpers import demo_catalog_database

        return demo_catalog_database("sqlite", tmp_path)
    return fresh_database("sqlite", service, tmp_path)


def _app(service, url):
    main = importlib.import_module(f"{service}.main")
    config = importlib.import_module(f"{service}.config")
    return main.create_app(config.Settings(database_url=url, api_keys=TEST_KEY_ENTRIES, rate_limit_per_minute=0))


async def _seed(service, client):
    if service == "directory":
        r = await client.post("/import", json={"rows": directory_rows()}, headers=auth("admin"))
        assert r.status_code == 200, r.text
    if service == "intake311":
        services = (await client.get("/services.json")).json()
        code = next(s["service_code"] for s in services if not s.get("metadata"))
        r = await client.post("/requests.json", data={
            "api_key": TEST_KEYS["call_center"], "service_code": code, "lat": "39.95", "long": "-75.16",
            "description": "probe seed", **RESIDENT})
        assert r.status_code in (200, 201), r.text


def _fill(path: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: "json" if m.group(1) == "fmt" else "X1", path)


@pytest.mark.parametrize("service", available_services())
async def test_probes_change_nothing_and_never_500(service, tmp_path):
    app = _app(service, _database(service, tmp_path))
    async with app_client(app) as client:
        await _seed(service, client)
        gets = [(p, op) for p, ops in app.openapi()["paths"].items() for m, op in ops.items() if m == "get"]
        before = [(await client.get(_fill(p))).status_code for p, _ in gets if "{" not in p.replace("{fmt}", "")]
        failures = []
        for path, op in gets:
            string_params = [
                prm["name"] for prm in op.get("parameters", [])
                if prm["in"] in ("query", "path") and _is_string(prm.get("schema", {}))
            ]
            for probe in PROBES:
                for name in string_params:
                    url = path.replace("{" + name + "}", probe.replace("/", "%2F")) if f"{{{name}}}" in path else path
                    params = {} if f"{{{name}}}" in path else {name: probe}
                    r = await client.get(_fill(url), params=params)
                    if r.status_code >= 500:
                        failures.append(f"GET {path} {name}={probe!r}: {r.status_code}")
                    if "root:x:0:0" in r.text:
                        failures.append(f"GET {path} {name}={probe!r}: path traversal")
        after = [(await client.get(_fill(p))).status_code for p, _ in gets if "{" not in p.replace("{fmt}", "")]
        assert not failures, "\n".join(failures)
        assert before == after


def _is_string(schema) -> bool:
    if schema.get("type") == "string":
        return True
    return any(_is_string(s) for s in schema.get("anyOf", []))


@pytest.mark.parametrize("service", available_services())
async def test_personal_data_never_public(service, tmp_path):
    app = _app(service, _database(service, tmp_path))
    secrets = EMAILS + PHONES + list(RESIDENT.values())
    async with app_client(app) as client:
        await _seed(service, client)
        leaks = []
        paths = [p for p, ops in app.openapi()["paths"].items() if "get" in ops]
        if service == "intake311":
            rid = (await client.get("/requests.json")).json()[0]["service_request_id"]
            paths += [f"/requests/{rid}.json", f"/requests/{rid}.xml", "/requests.xml?extensions=true",
                      "/requests.json?extensions=true"]
        for path in paths:
            if "{" in path.replace("{fmt}", ""):
                continue
            for fmt in (["json", "xml"] if "{fmt}" in path else [None]):
                r = await client.get(path.replace("{fmt}", fmt) if fmt else path)
                leaks += [f"{path} ({fmt}): {s}" for s in secrets if s in r.text]
        assert not leaks, "\n".join(leaks)
        if service == "directory":  # and staff do see them
            staff = (await client.get("/people", params={"page_size": 200}, headers=auth("staff"))).text
            assert EMAILS[0] in staff
