"""Issue 17, people in the loop: every change names the person who made it (or "key <name>" for a
machine key), through a bearer token from the real local identity provider; the override's author
reaches the event as override_by; a person limited to one department judges only its indicators."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from ind_helpers import W, create, month, outbox_events

from citystat_common.devidp import ProviderProcess, sign_in_as
from citystat_common.testing import app_client
from indicators.main import create_app

pytestmark = pytest.mark.integration
GORDON = "gordon.nakamura@city.example.gov"  # the STREETS stat partner
TERESA = "teresa.novak@city.example.gov"  # the WATER stat partner
HECTOR = "hector.whitaker@city.example.gov"  # STREETS customer service officer: no indicators:write


@pytest.fixture(scope="module")
def provider():
    with ProviderProcess() as p:
        yield p


@pytest.fixture
async def people_client(indicators_settings, provider):
    from ind_helpers import preload_departments

    settings = indicators_settings.model_copy(update={"identity_issuer": provider.issuer})
    app = create_app(settings)
    async with app_client(app) as c:
        await preload_departments(app)
        c.app = app  # type: ignore[attr-defined]
        yield c


async def bearer(provider, email):
    tokens = await asyncio.to_thread(sign_in_as, provider.issuer, email, client_id="citystat")
    return {"Authorization": f"Bearer {tokens['id_token']}"}


def _until(days=30):
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def test_every_change_names_its_person(people_client, provider):
    c = people_client
    me = await bearer(provider, GORDON)
    r = await c.post("/indicators", headers=me, json={
        "code": "STREETS.potholes", "name": "Potholes repaired within 3 days", "department_code": "STREETS",
        "unit": "percentage", "kind": "quality", "direction": "up", "frequency": "monthly", "description": "first"})
    assert r.status_code == 201, r.text
    assert (await c.patch("/indicators/STREETS.potholes", json={"description": "second"}, headers=me)).status_code == 200
    descriptions = (await c.get("/indicators/STREETS.potholes/descriptions")).json()
    assert {d["changed_by"] for d in descriptions} == {"Gordon Nakamura"}, descriptions
    r = await c.put("/indicators/STREETS.potholes/targets", headers=me,
                    json={"targets": [{"period": month(2), "value": 80, "applies": "onward"}]})
    assert r.status_code == 200 and r.json()[0]["set_by"] == "Gordon Nakamura", r.text
    for value in (70, 79):
        r = await c.post("/indicators/STREETS.potholes/observations", json={"period": month(1), "value": value},
                         headers=me if value == 70 else W)
        assert r.status_code == 200, r.text
    assert r.json()["updated_by"] == "key analyst"
    revs = (await c.get(f"/indicators/STREETS.potholes/observations/{month(1)}/revisions")).json()
    assert [x["changed_by"] for x in revs] == ["key analyst"]
    r = await c.put("/indicators/STREETS.potholes/override", headers=me,
                    json={"status": "yellow", "reason": "crews back from the storm", "expires_at": _until()})
    assert r.status_code == 200, r.text
    o = r.json()["override"]
    assert (o["created_by"], o["created_by_email"]) == ("Gordon Nakamura", GORDON)
    assert r.json()["status_reason"] == "override by Gordon Nakamura"
    [h, *_] = (await c.get("/indicators/STREETS.potholes/history")).json()["items"]
    assert (h["actor"], h["actor_email"], h["actor_via"]) == ("Gordon Nakamura", GORDON, "bearer")
    events = [p for e, p in await outbox_events(c.app) if e.type == "indicators.indicator.status_changed"]
    assert events[-1].override_by == "Gordon Nakamura"
    r = await c.delete("/indicators/STREETS.potholes/override", headers=W)
    assert r.status_code == 200, r.text
    [cleared] = (await c.get("/indicators/STREETS.potholes/overrides")).json()
    assert cleared["cleared_by"] == "key analyst" and cleared["cleared_by_email"] is None
    [h, *_] = (await c.get("/indicators/STREETS.potholes/history")).json()["items"]
    assert (h["actor"], h["actor_via"]) == ("key analyst", "key")


async def test_a_department_stat_partner_judges_only_their_departments(people_client, provider):
    c = people_client
    await create(c)
    body = {"status": "green", "reason": "not ours to judge", "expires_at": _until()}
    r = await c.put("/indicators/STREETS.potholes/override", headers=await bearer(provider, TERESA), json=body)
    assert r.status_code == 403 and "own department" in r.json()["detail"], r.text
    r = await c.put("/indicators/STREETS.potholes/override", headers=await bearer(provider, HECTOR), json=body)
    assert r.status_code == 403, r.text
    assert (await c.get("/indicators/STREETS.potholes/overrides")).json() == []
