"""A person behind every write, and the Senior Team Model on the API: people call with a bearer
token from the real local identity provider; keys keep their scopes."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from esc_helpers import (
    OPS,
    Harness,
    breach,
    demo_email,
    esc_settings,
    make_harness,
    seed_people,
    status_changed,
)

from citystat_common.devidp import ProviderProcess, sign_in_as
from citystat_common.testing import app_client
from escalation.models import TimelineEntry

pytestmark = pytest.mark.integration
GORDON = demo_email("STREETS", "stat_partner")  # the STREETS stat partner: the pothole ticket is his
NADIA = "nadia.santiago@city.example.gov"  # STREETS 311 staff, not on the senior team
ESTHER = "esther.raman@city.example.gov"  # the performance office


@pytest.fixture(scope="module")
def provider():
    with ProviderProcess() as p:
        yield p


async def bearer(provider: ProviderProcess, email: str) -> dict[str, str]:
    tokens = await asyncio.to_thread(sign_in_as, provider.issuer, email, client_id="citystat")
    return {"Authorization": f"Bearer {tokens['id_token']}"}


@pytest.fixture
async def people(db_factory, directory, clock, provider):
    settings = esc_settings(db_factory, identity_issuer=provider.issuer)
    engine, deps, runner, app = await make_harness(settings, clock, directory.transport, "http://directory")
    async with app_client(app) as client:
        h = Harness(settings=settings, clock=clock, engine=engine, deps=deps, runner=runner, client=client)
        h.ids = await seed_people(h, directory)  # type: ignore[attr-defined]
        yield h
    await deps.directory.aclose()
    await engine.dispose()


async def test_every_write_names_its_person_or_key(people, provider):
    h = people
    await h.deliver(breach(indicator="potholes", episode="p1", tag="performance", name="Pothole repair time"))
    [t] = await h.tickets(indicator_id="potholes")
    assert t["assignee"]["name"] == "Gordon Nakamura"
    me = await bearer(provider, GORDON)
    r = await h.client.post(f"/tickets/{t['id']}/acknowledge", json={"note": "on it"}, headers=me)
    assert r.status_code == 200, r.text
    r = await h.client.post(f"/tickets/{t['id']}/actions", headers=me,
                            json={"description": "Crews on the backlog", "owner_person_id": h.ids[GORDON],
                                  "due_date": "2026-11-30"})
    assert r.status_code == 201, r.text
    action = r.json()
    assert action["owner"] == "Gordon Nakamura" and action["owner_person_id"] == h.ids[GORDON]
    assert action["created_by"] == "Gordon Nakamura" and action["author"]["email"] == GORDON
    r = await h.client.post(f"/tickets/{t['id']}/notes", json={"text": "from the ops desk"}, headers=OPS)
    assert r.status_code == 201 and r.json()["actor"] == "key ops" and r.json()["author"]["kind"] == "key"
    await h.deliver(status_changed(indicator="potholes", episode="p1", by="Gordon Nakamura"))

    d = await h.ticket(t["id"])
    by_kind = {e["kind"]: e for e in d["timeline"]}
    ack = by_kind["acknowledged"]
    assert ack["actor"] == "Gordon Nakamura"
    assert ack["author"] == {"kind": "person", "name": "Gordon Nakamura", "label": "Gordon Nakamura", "email": GORDON,
                             "via": "bearer", "person_id": h.ids[GORDON]}
    assert by_kind["action_added"]["author"]["person_id"] == h.ids[GORDON]
    assert by_kind["note"]["actor"] == "key ops"
    assert by_kind["override"]["author"]["person_id"] == h.ids[GORDON]  # the override's author, found by name
    assert by_kind["routed"]["author"]["kind"] == "system"


async def test_old_rows_keep_their_actor(people):
    h = people
    await h.deliver(breach(indicator="potholes", episode="p1"))
    [t] = await h.tickets(indicator_id="potholes")
    async with h.uow() as uow:  # as a row written before authors were recorded
        await uow.session.execute(sa.update(TimelineEntry).values(author=None))
        await uow.commit()
    d = await h.ticket(t["id"])
    assert all(e["author"] is None and e["actor"] for e in d["timeline"])


async def test_people_outside_the_team_read_but_may_not_act(people, provider):
    h = people
    await h.deliver(breach(indicator="potholes", episode="p1", tag="performance"))
    [t] = await h.tickets(indicator_id="potholes")
    nadia = await bearer(provider, NADIA)
    assert (await h.client.get(f"/tickets/{t['id']}", headers=nadia)).status_code == 200
    r = await h.client.post(f"/tickets/{t['id']}/acknowledge", headers=nadia)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"] == ("only the STREETS senior team, the ticket's assignee or their chain may acknowledge "
                                  "this ticket")
    # a WATER partner holds escalation:write, but not for STREETS
    water = await bearer(provider, demo_email("WATER", "stat_partner"))
    r = await h.client.post(f"/tickets/{t['id']}/resolve", json={"reason": "fixed"}, headers=water)
    assert r.status_code == 403 and "STREETS senior team" in r.json()["detail"]
    r = await h.client.post("/tickets", headers=water, json={"department_code": "STREETS", "title": "x", "reason": "y"})
    assert r.status_code == 403 and "open a flag for STREETS" in r.json()["detail"]
    default = (await h.client.get("/policies/default")).json()
    r = await h.client.put("/policies/strict", headers=water, json={"levels": default["levels"]})
    assert r.status_code == 403 and r.json()["detail"] == "only the performance office may change escalation policies"
    # reassigned to the WATER partner: the assignee may
    r = await h.client.post(f"/tickets/{t['id']}/assign", headers=OPS, json={
        "assignee": {"person_id": h.ids[demo_email("WATER", "stat_partner")], "name": "x"}, "reason": "owns the data"})
    assert r.status_code == 200, r.text
    assert (await h.client.post(f"/tickets/{t['id']}/acknowledge", headers=water)).status_code == 200


async def test_the_chain_and_the_performance_office_may(people, provider):
    h = people
    await h.deliver(breach(indicator="potholes", episode="p1", tag="performance"))
    [t] = await h.tickets(indicator_id="potholes")
    head = await bearer(provider, demo_email("STREETS", "department_head"))
    assert (await h.client.post(f"/tickets/{t['id']}/acknowledge", headers=head)).status_code == 200
    dm = await bearer(provider, demo_email("STREETS", "deputy_mayor"))
    assert (await h.client.post(f"/tickets/{t['id']}/start", headers=dm)).status_code == 200
    office = await bearer(provider, ESTHER)
    r = await h.client.post(f"/tickets/{t['id']}/resolve", json={"reason": "fixed"}, headers=office)
    assert r.status_code == 200 and r.json()["status"] == "resolved"


async def test_a_key_without_the_scope_is_refused(people):
    h = people
    await h.deliver(breach(indicator="potholes", episode="p1"))
    [t] = await h.tickets(indicator_id="potholes")
    from citystat_common.testing import auth

    r = await h.client.post(f"/tickets/{t['id']}/acknowledge", headers=auth("staff"))
    assert r.status_code == 403 and "escalation:write" in r.json()["detail"]
    assert (await h.client.post(f"/tickets/{t['id']}/acknowledge")).status_code == 401
