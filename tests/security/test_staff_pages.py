"""intake311's staff pages are outside the OpenAPI document (so outside the auth matrix): every page
and form refuses a caller without a key or sign-in (401 page), a key without the page's permission
(403 page with the reason), and never shows the resident's personal data or changes a request for
them; probes in the form fields give a 4xx or a harmless page, never a 500."""

import pytest
from intake311_helpers import demo_catalog_database

from citystat_common.testing import TEST_KEY_ENTRIES, TEST_KEYS, app_client, auth
from intake311.config import Settings
from intake311.main import create_app

FILE, WORK = "staff who file 311 requests", "311 staff who work a department&#39;s requests"
PAGES = [("GET", "/staff/call", FILE), ("POST", "/staff/call", FILE), ("GET", "/staff/queue", WORK),
         ("POST", "/staff/queue/1/acknowledge", WORK), ("POST", "/staff/queue/1/close", WORK),
         ("POST", "/staff/queue/1/transfer", WORK)]
PROBES = ["' OR '1'='1", "../../../../etc/passwd", "<script>x</script>", "9" * 40, "-1", "１２"]


@pytest.fixture
async def client(tmp_path):
    settings = Settings(database_url=demo_catalog_database("sqlite", tmp_path), api_keys=TEST_KEY_ENTRIES,
                        rate_limit_per_minute=0, kafka_bootstrap="127.0.0.1:9", directory_url="http://127.0.0.1:9")
    async with app_client(create_app(settings)) as c:
        r = await c.post("/requests.json", data={"api_key": TEST_KEYS["web"], "service_code": "POTHOLE", "lat": "39.95",
                                                  "long": "-75.16", "attribute[SIZE]": "large",
                                                  "phone": "+1 215 555 0199", "first_name": "Zelda"})
        assert r.status_code == 201, r.text
        yield c


async def test_every_page_refuses_who_may_not_use_it(client):
    for method, path, words in PAGES:
        anonymous = await client.request(method, path)
        assert anonymous.status_code == 401 and anonymous.headers["content-type"].startswith("text/html"), path
        scopeless = await client.request(method, path, headers=auth("public"))
        assert scopeless.status_code == 403 and f"it is for {words}" in scopeless.text, path
        assert "Zelda" not in anonymous.text + scopeless.text and "555 0199" not in scopeless.text
    # a resident-facing key may file (311:submit) but not work a queue
    assert (await client.get("/staff/call", headers=auth("web"))).status_code == 200
    r = await client.post("/staff/queue/1/acknowledge", headers=auth("web"))
    assert r.status_code == 403
    doc = (await client.get("/staff/requests/1", headers=auth("staff"))).json()
    assert doc["detailed_status"] == "open"


@pytest.mark.parametrize("probe", PROBES)
async def test_probes_in_the_forms_are_refused_in_words(client, probe):
    staff = auth("call_center")
    answers = [
        await client.get("/staff/call", params={"service_code": probe}, headers=staff),
        await client.post("/staff/call", data={"service_code": probe}, headers=staff),
        await client.post("/staff/call", data={"service_code": "POTHOLE", "attribute[SIZE]": probe,
                                               "address_string": probe, "phone": probe}, headers=staff),
        await client.get("/staff/queue", params={"status": probe, "service_code": probe, "page": probe}, headers=staff),
        await client.post(f"/staff/queue/{probe}/acknowledge", headers=staff),
        await client.post("/staff/queue/1/transfer", data={"department_code": probe, "text": "x", "back": probe},
                          headers=staff),
        await client.post("/staff/queue/1/close", data={"reason": probe, "text": "x"}, headers=staff),
    ]
    for r in answers:
        assert r.status_code < 500, (r.request.url, r.text[:300])
        assert "<script>x</script>" not in r.text  # escaped wherever it is echoed
    assert (await client.get("/staff/requests/1", headers=auth("staff"))).json()["status"] == "open"
