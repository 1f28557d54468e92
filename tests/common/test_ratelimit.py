"""Write rate limit per API key: unit test of the bucket, and 429 + Retry-After through the app."""

from citystat_common.ratelimit import TokenBuckets
from citystat_common.testing import TEST_KEY_ENTRIES, app_client, auth
from directory.config import Settings
from directory.main import create_app


def test_bucket_refills_at_its_rate():
    now = [0.0]
    b = TokenBuckets(rate_per_second=2, burst=3, clock=lambda: now[0])
    assert [b.take("k") for _ in range(3)] == [0, 0, 0]
    assert b.take("k") == 0.5  # empty: one token in half a second
    assert b.take("other") == 0  # buckets are per key
    now[0] += 0.5
    assert b.take("k") == 0


async def test_writes_over_the_limit_get_429_with_retry_after(db_factory):
    settings = Settings(database_url=db_factory("directory"), api_keys=TEST_KEY_ENTRIES, rate_limit_per_minute=60, rate_limit_burst=3)
    async with app_client(create_app(settings)) as client:
        codes = [(await client.post("/people", json={"name": f"P{i}"}, headers=auth("directory"))).status_code for i in range(4)]
        assert codes == [201, 201, 201, 429]
        r = await client.post("/people", json={"name": "P"}, headers=auth("directory"))
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.headers["content-type"].startswith("application/problem+json")
        # another key has its own bucket, and reads are never limited
        assert (await client.post("/people", json={"name": "Q"}, headers=auth("admin"))).status_code == 201
        assert (await client.get("/people")).status_code == 200


def test_the_key_is_found_in_every_body_an_open311_client_sends():
    from citystat_common.ratelimit import body_api_key

    assert body_api_key(b"application/x-www-form-urlencoded", b"service_code=X&api_key=k%2B1&lat=1") == b"k+1"
    assert body_api_key(b"application/x-www-form-urlencoded; charset=utf-8", b"api_key=&api_key=second") == b"second"
    assert body_api_key(b"application/json", b'{"service_code": "X", "api_key": "j"}') == b"j"
    assert body_api_key(b"application/json", b'[1, 2]') is None and body_api_key(b"application/json", b"{bad") is None
    multipart = (b'--B\r\nContent-Disposition: form-data; name="service_code"\r\n\r\nX\r\n'
                 b'--B\r\nContent-Disposition: form-data; name="api_key"\r\n\r\nm\r\n--B--\r\n')
    assert body_api_key(b"multipart/form-data; boundary=B", multipart) == b"m"
    assert body_api_key(b"application/octet-stream", b"api_key=x") is None
