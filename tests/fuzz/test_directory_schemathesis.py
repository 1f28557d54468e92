"""Schemathesis against the directory's OpenAPI schema: zero 5xx, every response conforms."""

from citystat_common.demo import directory_rows
from citystat_common.testing import TEST_KEY_ENTRIES, ThreadServer, auth, fresh_database, fuzz_openapi
from directory.config import Settings
from directory.main import create_app


def test_directory_api_fuzz(tmp_path):
    import httpx

    settings = Settings(database_url=fresh_database("sqlite", "directory", tmp_path), api_keys=TEST_KEY_ENTRIES,
                        rate_limit_per_minute=0)
    with ThreadServer(create_app(settings)) as server:
        httpx.post(f"{server.url}/import", json={"rows": directory_rows()}, headers=auth("admin"), timeout=30).raise_for_status()
        for who in ("admin", None):  # with a key that may write everything, and anonymously
            failures = fuzz_openapi(server.url, headers=auth(who) if who else None, max_examples=30)
            assert not failures, "\n\n".join(failures)
