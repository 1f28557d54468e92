"""Issue 17, the pages for 311 staff without a browser: the call-taker's page files a request from the
service definition (fields by datatype, required answers enforced on the server and reported beside
the field, the promise shown first, the staff channel and the call-taker's name recorded); the
department queue lists the signed-in person's department's requests, filtered in the URL, and each
action posts, then redirects back; refusals are 403 pages with a reason; a form without its CSRF
token is refused."""

import re

import httpx
import pytest
from intake311_helpers import create
from pages_helpers import JULIAN, NADIA, PRIYA, csrf_of, sign_in, signed_in_server

from citystat_common.devidp import ProviderProcess
from citystat_common.testing import app_client, auth
from intake311.main import create_app

pytestmark = pytest.mark.integration
WATER_MAIN = {"service_code": "WATER_MAIN", "lat": "39.95", "long": "-75.16", "attribute[FLOW]": "steady"}
ANALYST = "esther.raman@city.example.gov"  # staff, no 311:write
NOBODY = "drifter@city.example.gov"


@pytest.fixture(scope="module")
def provider():
    with ProviderProcess() as p:
        httpx.put(f"{p.issuer}/users/{NOBODY}", json={
            "email": NOBODY, "name": "Dana Drifter", "groups": ["citystat-staff", "citystat-311_staff"]},
        ).raise_for_status()
        yield p


@pytest.fixture(scope="module")
def bearer(provider):
    return provider.bearer


@pytest.fixture
async def client(settings, provider):
    async with app_client(create_app(settings.model_copy(update={"identity_issuer": provider.issuer}))) as c:
        yield c


def text_of(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


async def test_the_call_page_renders_the_service_definition_by_datatype(client, bearer):
    page = await client.get("/staff/call", params={"service_code": "DUMPING"}, headers=bearer(PRIYA))
    assert page.status_code == 200, page.text
    html = page.text
    assert 'type="checkbox"' in html and 'name="attribute[MATERIAL][]"' in html  # multivaluelist
    assert re.search(r'name="attribute\[ITEM_COUNT\]"[^>]*\s+type="number"', html)  # number
    assert '<select id="attr-witnessed" name="attribute[WITNESSED]"' in html  # singlevaluelist
    assert "<legend>What was dumped? (choose all that apply) (required)</legend>" in html
    assert "We aim to resolve this within 5 business days (" in text_of(html)  # the promise, before filing
    trash = await client.get("/staff/call", params={"service_code": "MISSED_TRASH"}, headers=bearer(PRIYA))
    assert 'type="datetime-local"' in trash.text
    noise = await client.get("/staff/call", params={"service_code": "NOISE"}, headers=bearer(PRIYA))
    assert '<textarea id="attr-when" name="attribute[WHEN]"' in noise.text  # text
    graffiti = await client.get("/staff/call", params={"service_code": "GRAFFITI"}, headers=bearer(PRIYA))
    assert "Within 1 business day when the answer to “Is it offensive or hateful?” is “Yes”" in graffiti.text
    # choosing is a plain GET form: no script on the page
    assert "<script" not in html and '<form method="get" action="/staff/call">' in html
    unknown = await client.get("/staff/call", params={"service_code": "NOPE"}, headers=bearer(PRIYA))
    assert unknown.status_code == 200 and "There is no service “NOPE”" in unknown.text


async def test_required_answers_are_enforced_beside_the_field_and_nothing_is_filed(client, bearer):
    before = (await client.get("/staff/requests", headers=auth("staff"))).json()["total"]
    r = await client.post("/staff/call", headers=bearer(PRIYA), data={
        "service_code": "DUMPING", "attribute[ITEM_COUNT]": "lots", "phone": "call me"})
    assert r.status_code == 422
    html = r.text
    assert '<p class="error" id="attr-material-error">This answer is required.</p>' in html
    assert '<p class="error" id="attr-item_count-error">This must be a number, got &#39;lots&#39;.</p>' in html
    assert 'id="caller-address-string-error">Give the address (or the nearest intersection).</p>' in html
    assert 'id="caller-phone-error">This must be a phone number' in html
    assert 'aria-describedby="attr-material-error"' in html and 'value="lots"' in html  # kept for correcting
    assert "attribute[" not in text_of(html).replace('name="attribute[', "")  # no parameter names in the words
    assert (await client.get("/staff/requests", headers=auth("staff"))).json()["total"] == before


async def test_filing_a_call_records_the_call_taker_on_the_phone_channel(client, bearer):
    r = await client.post("/staff/call", headers=bearer(PRIYA), data={
        "service_code": "DUMPING", "attribute[MATERIAL][]": ["tires", "furniture"], "attribute[ITEM_COUNT]": "4",
        "address_string": "1200 Market St", "first_name": "Ann", "phone": "215-555-0100"})
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith("/staff/call?filed=")
    rid = re.search(r"filed=(\d+)", r.headers["location"]).group(1)
    done = await client.get(r.headers["location"], headers=bearer(PRIYA))
    assert f"Request {rid} filed" in done.text and "Expected by" in done.text
    doc = (await client.get(f"/staff/requests/{rid}", headers=auth("staff"))).json()
    assert doc["channel"] == "phone" and doc["filed_by"] == "Priya Lindqvist" and doc["created_by_email"] == PRIYA
    assert doc["attributes"] == {"MATERIAL": ["tires", "furniture"], "ITEM_COUNT": 4}
    assert doc["notes"][0]["summary"] == "Received by Priya Lindqvist" and doc["first_name"] == "Ann"


async def test_a_batch_service_call_gives_the_caller_its_tracking_code(client, bearer):
    r = await client.post("/staff/call", headers=bearer(PRIYA), data={
        "service_code": "TREE_PLANTING", "address_string": "1200 Market St"})
    assert r.status_code == 303, r.text
    done = await client.get(r.headers["location"], headers=bearer(PRIYA))
    token = re.search(r"tracking code: <strong>([0-9a-f-]{36})</strong>", done.text)
    assert "Request received for review" in done.text and token
    assert (await client.get(f"/tokens/{token.group(1)}.json")).status_code == 200


async def test_the_queue_is_the_persons_departments_with_filters_in_the_url(client, bearer):
    pothole, water = await create(client), await create(client, WATER_MAIN)
    page = await client.get("/staff/queue", headers=bearer(NADIA))
    assert page.status_code == 200, page.text
    assert f'id="request-{pothole}"' in page.text and f'id="request-{water}"' not in page.text
    assert "Requests of Streets" in text_of(page.text) and "<script" not in page.text
    await client.post(f"/staff/requests/{pothole}/acknowledge", headers=bearer(NADIA))
    opened = await client.get("/staff/queue", params={"status": "open"}, headers=bearer(NADIA))
    assert f'id="request-{pothole}"' not in opened.text
    acked = await client.get("/staff/queue", params={"status": "acknowledged", "service_code": "POTHOLE"},
                             headers=bearer(NADIA))
    assert f'id="request-{pothole}"' in acked.text and '<option value="acknowledged" selected>' in acked.text
    other = await client.get("/staff/queue", params={"service_code": "STREETLIGHT"}, headers=bearer(NADIA))
    assert f'id="request-{pothole}"' not in other.text
    # the contact center works every queue
    everything = await client.get("/staff/queue", headers=bearer(PRIYA))
    assert f'id="request-{pothole}"' in everything.text and f'id="request-{water}"' in everything.text


async def test_each_action_posts_then_redirects_back_and_the_history_names_the_person(client, bearer):
    rid = await create(client)
    back = "status=&service_code=POTHOLE"
    r = await client.post(f"/staff/queue/{rid}/acknowledge", data={"back": back}, headers=bearer(NADIA))
    assert r.status_code == 303 and r.headers["location"] == f"/staff/queue?service_code=POTHOLE&done={rid}%3Aacknowledge#request-{rid}"
    page = await client.get(r.headers["location"].split("#")[0], headers=bearer(NADIA))
    assert f"Request {rid} acknowledged." in page.text and "Acknowledged by Nadia Santiago" in page.text
    r = await client.post(f"/staff/queue/{rid}/note", data={"text": "crew on Tuesday"}, headers=bearer(NADIA))
    assert r.status_code == 303
    # a close without its note is refused in words, at the request, and changes nothing
    r = await client.post(f"/staff/queue/{rid}/close", data={"reason": "fixed", "text": " "}, headers=bearer(NADIA))
    assert r.status_code == 422 and "Write a closing note: the caller reads it." in r.text
    r = await client.post(f"/staff/queue/{rid}/close", data={"reason": "fixed", "text": "Filled today."},
                          headers=bearer(NADIA))
    assert r.status_code == 303
    doc = (await client.get(f"/staff/requests/{rid}", headers=auth("staff"))).json()
    assert doc["status"] == "closed" and doc["status_notes"] == "Filled today."
    assert [n["summary"] for n in doc["notes"]][1:] == [
        "Acknowledged by Nadia Santiago", "Note by Nadia Santiago", "Closed by Nadia Santiago"]
    assert doc["notes"][2]["public"] is False  # a note is for staff unless ticked


async def test_transfer_needs_a_reason_and_hands_the_request_over(client, bearer):
    rid = await create(client)
    r = await client.post(f"/staff/queue/{rid}/transfer", data={"department_code": "WATER"}, headers=bearer(NADIA))
    assert r.status_code == 422 and "Give the reason for the transfer." in r.text
    r = await client.post(f"/staff/queue/{rid}/transfer", data={"department_code": "WATER", "text": "a main broke"},
                          headers=bearer(NADIA))
    assert r.status_code == 303
    assert f'id="request-{rid}"' not in (await client.get("/staff/queue", headers=bearer(NADIA))).text
    assert f'id="request-{rid}"' in (await client.get("/staff/queue", headers=bearer(JULIAN))).text


async def test_refusals_are_403_pages_with_a_reason(client, bearer):
    water = await create(client, WATER_MAIN)
    r = await client.post(f"/staff/queue/{water}/acknowledge", headers=bearer(NADIA))
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "This request belongs to WATER; your department is STREETS" in r.text
    r = await client.get("/staff/queue", params={"department": "WATER"}, headers=bearer(NADIA))
    assert r.status_code == 403 and "is not one of your departments" in r.text
    r = await client.get("/staff/queue", headers=bearer(ANALYST))
    assert r.status_code == 403 and "it is for 311 staff who work a department&#39;s requests" in r.text
    r = await client.get("/staff/queue", headers=bearer(NOBODY))
    assert r.status_code == 403 and "You are in no department" in r.text
    r = await client.get("/staff/call", headers=auth("public"))
    assert r.status_code == 403 and "This key may not use this page" in r.text
    r = await client.get("/staff/call")  # sign-in is not set up here: said so, in words
    assert r.status_code == 401 and "sign-in through the city" in r.text
    # the refused POST wrote nothing
    doc = (await client.get(f"/staff/requests/{water}", headers=auth("staff"))).json()
    assert doc["detailed_status"] == "open"


def test_signed_in_pages_need_the_forms_csrf_token(settings, provider):
    with signed_in_server(settings, provider.issuer) as server, httpx.Client(base_url=server.url) as web:
        assert web.get("/staff/call").headers["location"] == "/signin?next=/staff/call"
        page = sign_in(web, NADIA)
        assert page.status_code == 200 and "Signed in as <strong>Nadia Santiago</strong>" in page.text
        with httpx.Client(base_url=server.url) as resident:  # filed by the web key, as a resident would
            r = resident.post("/requests.json", data={"api_key": "test-key-web", "service_code": "POTHOLE",
                                                      "lat": "39.9526", "long": "-75.1652", "attribute[SIZE]": "large"})
            rid = r.json()[0]["service_request_id"]
        page = web.get("/staff/queue")
        token = csrf_of(page.text)
        assert f'id="request-{rid}"' in page.text
        for bad in ({}, {"csrf": "forged"}):
            refused = web.post(f"/staff/queue/{rid}/acknowledge", data=bad)
            assert refused.status_code == 403 and "security token is missing or stale" in refused.text
            call = web.post("/staff/call", data={**bad, "service_code": "POTHOLE", "attribute[SIZE]": "small",
                                                 "address_string": "1 Penn Sq"})
            assert call.status_code == 403
        done = web.post(f"/staff/queue/{rid}/acknowledge", data={"csrf": token})
        assert done.status_code == 303
        assert "Acknowledged by Nadia Santiago" in web.get(done.headers["location"]).text
        assert web.post("/signout", data={"csrf": token}).status_code == 200
        assert web.get("/staff/queue").status_code == 303  # signed out: back to sign-in
