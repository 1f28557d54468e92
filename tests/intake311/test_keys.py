"""Issue 16, keys open no more than they should: resident-facing keys (311:submit) file requests
and rate their own, staff keys (311:write) act on requests; a key's channel is its own; only staff
channels close at first contact; feedback needs the reporter's token; the write rate limit counts
an Open311 api_key wherever it travels and answers Open311 routes in the spec's format; path ids
are matched whole."""

import pytest
import sqlalchemy as sa
from intake311_helpers import POTHOLE, assert_error_doc, create, create_with_token, post

from citystat_common.auth import DEMO_ROLES, KeyStore
from citystat_common.testing import TEST_KEY_ENTRIES, TEST_KEYS, app_client, auth
from intake311.main import create_app

ACTIONS = [("acknowledge", {}), ("start", {}), ("close", {"reason": "fixed"}), ("reopen", {}),
           ("transfer", {"department_code": "WATER"}), ("notes", {"text": "x"}), ("merge", {"into": "1"}), ("unlink", None)]


def test_resident_facing_keys_only_submit():
    store = KeyStore(TEST_KEY_ENTRIES)
    for role in ("web", "mobile_app"):
        p = store.authenticate(TEST_KEYS[role])
        assert DEMO_ROLES[role] == ["311:submit"] and p.has("311:submit") and not p.has("311:write")
    call_center = store.authenticate(TEST_KEYS["call_center"])
    assert call_center.has("311:submit") and call_center.has("311:write")
    # a key file from before the split (311:write alone) still submits: staff may file requests
    old = KeyStore([{"name": "old", "key": "k", "scopes": ["311:write"]}]).authenticate("k")
    assert old.has("311:submit")


@pytest.mark.parametrize("role", ["web", "mobile_app"])
async def test_resident_facing_keys_cannot_act_on_requests(client, role):
    rid = await create(client, role=role)
    other = await create(client, {**POTHOLE, "lat": "39.99"})
    for action, body in ACTIONS:
        kw = {"json": body} if body is not None else {}
        target = rid if action != "merge" else other
        r = await client.post(f"/staff/requests/{target}/{action}", headers=auth(role), **kw)
        assert r.status_code == 403, (action, r.text)
        assert "311:write" in r.json()["detail"]
    doc = (await client.get(f"/requests/{rid}.json", params={"extensions": "true"})).json()[0]
    assert doc["extended_attributes"]["detailed_status"] == "open" and len(doc["notes"]) == 1


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_a_keys_channel_is_its_own(client, fmt):
    assert_error_doc(await post(client, {**POTHOLE, "channel": "phone"}, role="web", fmt=fmt), 400, fmt,
                     contains="submits as channel 'web'")
    r = await post(client, {**POTHOLE, "channel": "web"}, role="web")  # naming its own is fine
    assert r.status_code == 201, r.text
    staff = (await client.get(f"/staff/requests/{r.json()[0]['service_request_id']}", headers=auth("staff"))).json()
    assert staff["channel"] == "web"
    assert (await post(client, {**POTHOLE, "channel": "walk_in"}, role="admin")).status_code == 201  # no channel of its own


@pytest.mark.parametrize("role,fields", [
    ("web", {}), ("mobile_app", {}), ("admin", {"channel": "sms"}), ("admin", {}),  # admin without a channel: the default, web
])
async def test_only_staff_channels_close_at_first_contact(client, role, fields):
    info = {"service_code": "INFORMATION", "address_string": "City Hall", "first_contact_resolution": "true"}
    assert_error_doc(await post(client, {**info, **fields}, role=role), 400, "json",
                     contains="first_contact_resolution is for staff")
    for staff_fields, staff_role in (({}, "call_center"), ({"channel": "walk_in"}, "admin"), ({"channel": "frontline"}, "admin")):
        r = await post(client, {**info, **staff_fields}, role=staff_role)
        assert r.status_code == 201, r.text


async def test_feedback_belongs_to_the_reporter(client, uow_factory):
    rid, token = await create_with_token(client, role="web")
    _, other_token = await create_with_token(client, {**POTHOLE, "lat": "39.99"}, role="web")
    await client.post(f"/staff/requests/{rid}/close", json={"reason": "fixed"}, headers=auth("call_center"))
    for key, body in (("web", {"score": 1}), ("web", {"score": 1, "feedback_token": other_token}),
                      ("call_center", {"score": 1, "feedback_token": "x" * 32}), ("admin", {"score": 1, "feedback_token": ""})):
        r = await client.post(f"/requests/{rid}/feedback", json=body, headers=auth(key))
        assert r.status_code in (403, 422), (key, body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"][0]["field"] == "feedback_token"
    r = await client.post(f"/requests/{rid}/feedback", json={"score": 5, "feedback_token": token}, headers=auth("web"))
    assert r.status_code == 201, r.text
    # only the token's hash is stored
    async with uow_factory() as uow:
        stored = (await uow.session.execute(sa.text("SELECT feedback_token_hash FROM service_requests WHERE id = :i"),
                                            {"i": int(rid)})).scalar_one()
        dumped = " ".join(str(v) for row in (await uow.session.execute(sa.text(
            "SELECT * FROM service_requests"))).all() for v in row)
        dumped += " ".join(str(v) for row in (await uow.session.execute(sa.text("SELECT * FROM idempotency_keys"))).all()
                           for v in row)
    assert len(stored) == 64 and token not in dumped and other_token not in dumped


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_path_ids_are_matched_whole(client, fmt):
    r = await post(client, {"service_code": "TREE_PLANTING", "address_string": "12 Pine St"})
    token = r.json()[0]["token"]
    assert (await client.get(f"/tokens/{token}.{fmt}")).status_code == 200
    for bad in (f"{token}garbage", f"{token}0", token[:-1], f" {token}"):
        assert_error_doc(await client.get(f"/tokens/{bad}.{fmt}"), 404, fmt)
    rid = await create(client)
    assert (await client.get(f"/requests/{rid}.{fmt}")).status_code == 200
    for bad in (f"{rid}x", f"0{rid}", f"{rid} ", f"+{rid}"):
        assert_error_doc(await client.get(f"/requests/{bad}.{fmt}"), 404, fmt)
        assert (await client.get(f"/staff/requests/{bad}", headers=auth("staff"))).status_code == 404


@pytest.fixture
async def limited(settings):
    settings = settings.model_copy(update={"rate_limit_per_minute": 1, "rate_limit_burst": 2})
    async with app_client(create_app(settings)) as c:
        yield c


async def test_rate_limit_counts_the_api_key_in_the_body(limited):
    def form(role):
        return {**POTHOLE, "api_key": TEST_KEYS[role]}

    web = [(await limited.post("/requests.json", data=form("web"))).status_code for _ in range(3)]
    assert web == [201, 201, 429]
    # same client address, another key in the body: its own bucket (before, every body key shared the address's)
    assert (await limited.post("/requests.json", data=form("mobile_app"))).status_code == 201
    assert (await limited.post("/requests.json", json=form("call_center"))).status_code == 201
    assert (await limited.post("/requests.json", files={"api_key": (None, TEST_KEYS["admin"]),
                                                          "service_code": (None, "POTHOLE"), "lat": (None, "39.95"),
                                                          "long": (None, "-75.16"),
                                                          "attribute[SIZE]": (None, "small")})).status_code == 201


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_an_open311_429_is_the_spec_error_document(limited, fmt):
    for prefix, role in (("", "web"), ("/open311/v2", "mobile_app")):
        for _ in range(2):
            await limited.post(f"{prefix}/requests.{fmt}", data={**POTHOLE, "api_key": TEST_KEYS[role]})
        r = await limited.post(f"{prefix}/requests.{fmt}", data={**POTHOLE, "api_key": TEST_KEYS[role]})
        errors = assert_error_doc(r, 429, fmt, contains="rate limit")
        assert errors[0]["code"] == 429 and int(r.headers["retry-after"]) >= 1
    # elsewhere the 429 stays problem+json
    for _ in range(2):
        await limited.put("/admin/calendars/X", json={}, headers=auth("admin"))
    other = await limited.put("/admin/calendars/X", json={}, headers=auth("admin"))
    assert other.status_code == 429 and other.headers["content-type"].startswith("application/problem+json")
    assert int(other.headers["retry-after"]) >= 1
