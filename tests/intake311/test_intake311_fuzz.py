"""Schemathesis over the whole intake311 API (Open311 and staff/admin routes): no 5xx on any input,
and every documented response conforms to its schema."""

from citystat_common.testing import TEST_KEY_ENTRIES, ThreadServer, auth, fresh_database, fuzz_openapi
from intake311.config import Settings
from intake311.main import create_app


def test_intake311_api_fuzz(tmp_path):
    settings = Settings(
        database_url=fresh_database("sqlite", "intake311", tmp_path), api_keys=TEST_KEY_ENTRIES, rate_limit_per_minute=0,
        kafka_bootstrap="127.0.0.1:9", directory_url="http://127.0.0.1:9", directory_timeout=0.5,
    )
    with ThreadServer(create_app(settings)) as server:
        for who in ("admin", None):  # a key that may do everything, and anonymously
            failures = fuzz_openapi(server.url, headers=auth(who) if who else None, max_examples=15)
            assert not failures, "\n\n".join(failures)
