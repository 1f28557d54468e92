"""Schemathesis against every operation of all four services, with a real server and demo data,
plus the edge values that have broken services (citystat_common.fuzzing): zero 5xx, and every
documented response conforms to its schema. With an admin key (so writes get past auth and into
validation and the domain; every parameter swept with every edge) and without a key; then on
PostgreSQL (when TEST_POSTGRES_URL is set) with the edges one database refuses and the other
stores (NUL, lengths, 32- and 64-bit integers). intake311's
Open311 routes are fuzzed with the parameters and bodies they read (open311_schema), in .json
and .xml, form-encoded and JSON."""

from __future__ import annotations

import importlib

import httpx
import open311_schema
import pytest
import seeds
from intake311_helpers import demo_catalog_database

from citystat_common.fuzz_inputs import is_database_edge
from citystat_common.fuzzing import fuzz_service
from citystat_common.testing import TEST_KEY_ENTRIES, ThreadServer, auth, fresh_database, postgres_admin_url

NOWHERE = "127.0.0.1:9"  # no broker: events wait in the outbox


def _app(service: str, url: str, directory_url: str):
    main = importlib.import_module(f"{service}.main")
    config = importlib.import_module(f"{service}.config")
    extra = {} if service == "directory" else {"directory_url": directory_url, "kafka_bootstrap": NOWHERE}
    settings = config.Settings(database_url=url, api_keys=TEST_KEY_ENTRIES, rate_limit_per_minute=0, **extra)
    return main.create_app(settings)


def _database(kind: str, service: str, tmp_path) -> str:
    # intake311 starts with no catalog: the Open311 routes are fuzzed with the demo city's
    return demo_catalog_database(kind, tmp_path) if service == "intake311" else fresh_database(kind, service, tmp_path)


@pytest.fixture(scope="module")
def directory_url(tmp_path_factory):
    """A directory for the services that ask it about departments (not the one being fuzzed)."""
    tmp = tmp_path_factory.mktemp("directory")
    with ThreadServer(_app("directory", fresh_database("sqlite", "directory", tmp), "")) as server:
        seeds.directory(server.url)
        yield server.url


def _open311(url: str, known: dict) -> dict:
    """The Open311 routes' parameters, with attributes of the catalog's first services."""
    codes = [s["service_code"] for s in httpx.get(f"{url}/services.json", timeout=30).json()][:4]
    attributes: dict = {}
    for code in codes:
        for a in httpx.get(f"{url}/services/{code}.json", timeout=30).json().get("attributes", []):
            values = [v["key"] for v in a.get("values") or []]
            schema = {"type": "string", "enum": values} if values else {"type": "string"}
            name = f"attribute[{a['code']}]" + ("[]" if a["datatype"] == "multivaluelist" else "")
            attributes[name] = schema
    known["service_code"] = codes[:1]
    return {
        "patch_schema": lambda doc: open311_schema.patch_open311(doc, service_codes=codes, attributes=attributes),
        "variants": {"fmt": ["json", "xml"]},
        # the /open311/v2 routes are the root's handlers mounted again: generated cases there, not the sweep
        "sweep_exclude": lambda label: " /open311/v2/" in label,
    }


@pytest.mark.parametrize("service", ["directory", "indicators", "escalation", "intake311"])
def test_api_fuzz(service, tmp_path, directory_url):
    failures = []
    with ThreadServer(_app(service, _database("sqlite", service, tmp_path), directory_url)) as server:
        known = getattr(seeds, service)(server.url)
        extra = _open311(server.url, known) if service == "intake311" else {}
        failures += fuzz_service(server.url, headers=auth("admin"), max_examples=6, known=known, **extra)
        failures += fuzz_service(server.url, headers=None, max_examples=4, sweep=False, known=known, **extra)
    if postgres_admin_url():  # again on PostgreSQL, with what it refuses and SQLite stores
        with ThreadServer(_app(service, _database("postgres", service, tmp_path), directory_url)) as server:
            known = getattr(seeds, service)(server.url)
            extra = _open311(server.url, known) if service == "intake311" else {}
            failures += [f"[postgres] {f}" for f in fuzz_service(
                server.url, headers=auth("admin"), max_examples=3, known=known, edges=is_database_edge, **extra)]
    assert not failures, f"{len(failures)} failing operation/parameter pairs:\n\n" + "\n\n".join(failures)
