"""Concurrent POST /requests share transactions (group commit): each still gets its own number,
its own status note, its own event with its own correlation id, and duplicates reported in the
same instant are linked to each other."""

from __future__ import annotations

import asyncio

import orjson
import sqlalchemy as sa
from intake311_helpers import POTHOLE, intake_deps, post

from citystat_common.db import create_engine
from citystat_common.testing import app_client
from intake311.main import create_app
from intake311.models import PLUMBING, ServiceRequest, StatusNote


async def _rows(settings, stmt):
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(stmt)).all()
    finally:
        await engine.dispose()


def _spread(i: int) -> dict[str, str]:
    # 1 km apart: not duplicates of each other
    return {**POTHOLE, "lat": f"{39.90 + 0.01 * (i // 10):.4f}", "long": f"{-75.20 + 0.01 * (i % 10):.4f}"}


async def test_concurrent_posts_share_transactions_but_nothing_else(settings):
    n = 30
    app = create_app(settings)
    async with app_client(app) as client:
        responses = await asyncio.gather(*(
            post(client, _spread(i), headers={"X-Correlation-ID": f"corr-{i}"}) for i in range(n)))
        committer = app.state.front_door.intake
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses if r.status_code != 201]
    ids = [r.json()[0]["service_request_id"] for r in responses]
    assert len(set(ids)) == n
    assert committer.items == n and committer.batches < n  # shared transactions did happen
    stored = {str(r.id): r for r in await _rows(settings, sa.select(ServiceRequest))}
    assert set(stored) == set(ids)
    for i, rid in enumerate(ids):  # each answer describes its own request
        assert stored[rid].lat == float(_spread(i)["lat"]) and stored[rid].duplicate_of is None
        assert responses[i].json()[0]["service_notice"] == stored[rid].service_notice
    notes = await _rows(settings, sa.select(StatusNote.request_id, StatusNote.kind))
    assert sorted((str(r), k) for r, k in notes) == sorted((rid, "created") for rid in ids)
    events = [orjson.loads(p) for (p,) in await _rows(settings, sa.select(PLUMBING.outbox.c.payload))]
    created = {e["subject"]: e for e in events if e["type"] == "intake311.request.created"}
    assert set(created) == set(ids) and len(events) == n
    for i, rid in enumerate(ids):  # the correlation id of the POST that made it, not of its batch-mates
        assert created[rid]["correlation_id"] == f"corr-{i}"
        assert created[rid]["data"]["lat"] == float(_spread(i)["lat"])


async def test_reports_of_one_pothole_in_one_instant_are_linked(settings):
    # one transaction in flight at a time: a report sees the ones before it (in its batch or committed)
    app = create_app(settings.model_copy(update={"intake_concurrent_batches": 1}))
    async with app_client(app) as client:
        responses = await asyncio.gather(*(post(client, POTHOLE) for _ in range(4)))
    assert all(r.status_code == 201 for r in responses)
    rows = {r.id: r.duplicate_of for r in await _rows(settings, sa.select(ServiceRequest.id, ServiceRequest.duplicate_of))}
    originals = [i for i, d in rows.items() if d is None]
    assert len(originals) == 1, rows  # the first; the others point at it
    assert all(d == originals[0] for i, d in rows.items() if i != originals[0])
    linked = [r for r in responses if "already reported nearby" in r.json()[0]["service_notice"]]
    assert len(linked) == 3 and all(f"request {originals[0]}," in r.json()[0]["service_notice"] for r in linked)


async def test_one_idempotency_key_in_one_batch_stores_one_request(client, settings):
    headers = {"Idempotency-Key": "retry-42"}
    responses = await asyncio.gather(*(post(client, POTHOLE, headers=headers) for _ in range(3)))
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    assert len({r.json()[0]["service_request_id"] for r in responses}) == 1
    assert len(await _rows(settings, sa.select(ServiceRequest.id))) == 1
    assert sum(r.headers.get("Idempotent-Replay") == "true" for r in responses) == 2


async def test_catalog_changes_through_this_process_apply_at_once(client):
    from citystat_common.testing import auth

    r = await client.patch("/admin/services/POTHOLE", json={"service_notice": "Crews are out today."},
                           headers=auth("admin"))
    assert r.status_code == 200, r.text
    r = await post(client, POTHOLE)
    assert r.status_code == 201 and r.json()[0]["service_notice"].startswith("Crews are out today.")
    assert (await client.delete("/admin/services/POTHOLE", headers=auth("admin"))).status_code == 204
    r = await post(client, POTHOLE)
    assert r.status_code == 404, r.text  # retired: no longer in the cached catalog either


async def test_one_batch_links_its_own_duplicates_and_keeps_other_places_apart(uow_factory):
    from intake311 import service
    from intake311.open311 import NewRequest

    async with uow_factory() as uow:
        pothole = service.ServiceEntry.of(await service.get_service(uow, "POTHOLE"), "America/New_York")

        def draft(lat: float, long: float, **kw) -> service.RequestDraft:
            return service.RequestDraft(data=NewRequest(service_code="POTHOLE", lat=lat, long=long, **kw),
                                        service=pothole, channel="web", author="t")

        created = await service.create_requests(uow, drafts=[
            draft(39.95, -75.16),  # original
            draft(39.9502, -75.16),  # ~22 m: duplicate of the first
            draft(39.96, -75.16),  # ~1.1 km: its own
            draft(39.95, -75.16, first_contact_resolution=True),  # resolved at once: never linked
            draft(39.9601, -75.16),  # ~11 m from the third
        ], deps=intake_deps(radius_m=50, window_hours=72))
        await uow.commit()
    ids = [c.id for c in created]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert [c.duplicate_of for c in created] == [None, ids[0], None, None, ids[2]]
    assert f"request {ids[0]}," in created[1].service_notice


async def test_a_catalog_write_during_a_reload_is_not_forgotten(monkeypatch):
    from intake311.catalog import CatalogCache

    reads = 0

    class SlowUoW:
        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc):
            return None

    async def fake_list(uow, *, active_only=True):
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.02)
        return []

    import intake311.catalog as catalog_module

    monkeypatch.setattr(catalog_module.domain, "list_services", fake_list)
    cache = CatalogCache(SlowUoW, timezone="America/New_York", ttl=60)
    reload = asyncio.create_task(cache.get("POTHOLE"))
    await asyncio.sleep(0.005)
    cache.invalidate()  # a write committed while the reload was reading the old catalog
    await reload
    await cache.get("POTHOLE")
    assert reads == 2  # read again, not trusted for the next 60 s


async def test_a_report_without_a_location_links_to_a_stored_one_with_its_address_id(uow_factory):
    from intake311 import service
    from intake311.open311 import NewRequest

    async def create(**kw):
        async with uow_factory() as uow:
            entry = service.ServiceEntry.of(await service.get_service(uow, "POTHOLE"), "America/New_York")
            drafts = [service.RequestDraft(data=NewRequest(service_code="POTHOLE", **kw), service=entry, channel="web",
                                           author="t")]
            created = await service.create_requests(uow, intake_deps(radius_m=50, window_hours=72),
                                                    drafts=drafts)
            await uow.commit()
        return created[0]

    first = await create(address_id="A-7", address_string="7 Elm St")
    other_place = await create(address_id="B-1")
    again = await create(address_id="A-7")
    assert first.duplicate_of is None and other_place.duplicate_of is None
    assert again.duplicate_of == first.id
