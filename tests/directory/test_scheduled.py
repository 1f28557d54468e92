"""Assignments that start in the future: stored, shown as upcoming, and in force from their date
(senior-team?at=, routing, and the senior_team.changed event, published when the date comes)."""

import asyncio
from datetime import UTC, datetime, timedelta

from citystat_common.demo import directory_rows
from citystat_common.testing import auth, collect_events
from directory import schedule
from directory.worker import build_worker

W = auth("directory")


async def _seed(client):
    r = await client.post("/import", json={"rows": directory_rows()}, headers=W)
    assert r.status_code == 200, r.text


async def _person(client, name):
    r = await client.post("/people", json={"name": name, "title": "Partner"}, headers=W)
    assert r.status_code == 201, r.text
    return r.json()


def _member(team, role):
    return next(m for m in team["members"] if m["role"] == role)


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _teams(events, code):
    return [d for t, d in events if t == "directory.senior_team.changed" and d["department_code"] == code]


async def _publish_due(uow_factory, now):
    async with uow_factory() as uow:
        n = await schedule.publish_due(uow, now=now)
        await uow.commit()
    return n


async def test_a_future_partner_is_stored_upcoming_and_takes_effect_on_the_date(client, outbox, uow_factory):
    await _seed(client)
    new = await _person(client, "Nora Future")
    starts = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0)
    r = await client.put(
        "/departments/FIRE/senior-team/hr_partner", json={"person_id": new["id"], "starts_at": starts.isoformat()}, headers=W
    )
    assert r.status_code == 200, r.text
    assert r.json()["person"]["id"] == new["id"] and _iso(r.json()["starts_at"]) == starts

    now_team = (await client.get("/departments/FIRE/senior-team")).json()
    current = _member(now_team, "hr_partner")["person"]
    assert current["id"] != new["id"]
    assert [(u["role"], u["person"]["id"], _iso(u["starts_at"])) for u in now_team["upcoming"]] == [
        ("hr_partner", new["id"], starts)
    ]
    then = (await client.get("/departments/FIRE/senior-team", params={"at": (starts + timedelta(minutes=1)).isoformat()})).json()
    assert _member(then, "hr_partner")["person"]["id"] == new["id"] and then["upcoming"] == []

    route = {"department": "FIRE", "function": "staffing"}
    assert (await client.get("/routing", params=route)).json()["responsible"]["id"] == current["id"]
    later = (await client.get("/routing", params={**route, "at": starts.isoformat()})).json()
    assert later["responsible"]["id"] == new["id"]

    # Nothing changed today: no team event names the new partner before the date.
    written = await outbox()
    assert all((d["roles"]["hr_partner"] or {}).get("person_id") != new["id"] for d in _teams(written, "FIRE"))
    assert await _publish_due(uow_factory, starts - timedelta(seconds=1)) == 0
    assert len(await outbox()) == len(written)
    # The date comes: the team event goes out once, with the new partner.
    assert await _publish_due(uow_factory, starts + timedelta(seconds=1)) == 1
    after = await outbox()
    fire = _teams(after[len(written):], "FIRE")
    assert len(fire) == 1 and fire[0]["roles"]["hr_partner"]["person_id"] == new["id"]
    assert await _publish_due(uow_factory, starts + timedelta(seconds=2)) == 0
    assert len(await outbox()) == len(after)


async def test_a_future_deputy_mayor_and_managing_director(client, outbox, uow_factory):
    await _seed(client)
    dm = await _person(client, "Dana Deputy")
    md = await _person(client, "Max Director")
    starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    body = {"starts_at": starts.isoformat()}
    r = await client.put("/clusters/SAFETY/deputy-mayor", json={**body, "person_id": dm["id"]}, headers=W)
    assert r.status_code == 200, r.text
    r = await client.put("/managing-director", json={**body, "person_id": md["id"]}, headers=W)
    assert r.status_code == 200, r.text

    cluster = (await client.get("/clusters/SAFETY")).json()
    assert cluster["deputy_mayor"]["id"] != dm["id"]
    assert [(u["person"]["id"], _iso(u["starts_at"])) for u in cluster["upcoming"]] == [(dm["id"], starts)]
    director = (await client.get("/managing-director")).json()
    assert director["person"]["id"] != md["id"] and director["upcoming"][0]["person"]["id"] == md["id"]

    written = await outbox()
    assert await _publish_due(uow_factory, starts) == 2
    fresh = [d for t, d in (await outbox())[len(written):] if t == "directory.senior_team.changed"]
    safety = set((await client.get("/clusters/SAFETY")).json()["departments"])
    # every department once (one event carries both changes), each with the new chain
    assert sorted(d["department_code"] for d in fresh) == sorted({r["department_code"] for r in directory_rows()})
    assert all(d["managing_director"]["person_id"] == md["id"] for d in fresh)
    assert {d["department_code"] for d in fresh if (d["deputy_mayor"] or {}).get("person_id") == dm["id"]} == safety


async def test_the_worker_publishes_a_scheduled_change_to_the_broker(client, directory_settings, broker):
    await _seed(client)
    new = await _person(client, "Walt Worker")
    starts = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    r = await client.put(
        "/departments/WATER/senior-team/oit_partner", json={"person_id": new["id"], "starts_at": starts.isoformat()}, headers=W
    )
    assert r.status_code == 200, r.text
    settings = directory_settings.model_copy(update={"schedule_interval_seconds": 0.2})
    # the worker's clock is past the start date: the scheduler finds the assignment due
    parts = build_worker(settings, clock=lambda: starts + timedelta(hours=1))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c(stop)) for c in parts.components()]

    def arrived(events):
        return any(
            e.type == "directory.senior_team.changed" and e.data["department_code"] == "WATER"
            and (e.data["roles"]["oit_partner"] or {}).get("person_id") == new["id"]
            for e in events
        )

    try:
        await collect_events(broker.bootstrap, "directory.changes", until=arrived, timeout=60)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await parts.engine.dispose()
