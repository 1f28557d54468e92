"""311 events applied in batches (the worker's consumer) give the figures one-at-a-time gives, apply
duplicates once, and keep history worth keeping: a derived indicator's running figure for the
current period keeps no revision per event, a figure of an ended period that changes does, and a
staff-entered value keeps every revision. On SQLite and PostgreSQL."""

import random
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from ind_helpers import W, create, deps_of, month, preload_departments
from test_indicators_derived311 import DEPT, _record, _request_payload, events_for, make_requests

from citystat_common.consumer import Batched
from citystat_common.events import RequestCreated, RequestUpdated, make_event
from citystat_common.runtime import make_consumer
from citystat_common.testing import app_client
from indicators.handlers import GROUP_ID, REQUEST_EVENTS, make_batch_handler, make_handlers
from indicators.main import create_app
from indicators.models import PLUMBING, Indicator, ObservationRevision, RequestFact, observations


def one_by_one(app):
    s = app.state.ctx.settings
    return make_consumer(s, app.state.ctx.engine, PLUMBING, group_id=GROUP_ID, topics=["311.requests"],
                         handlers=make_handlers(deps_of(s)))


def batched(app):
    s = app.state.ctx.settings
    runner = make_consumer(s, app.state.ctx.engine, PLUMBING, group_id=GROUP_ID, topics=["311.requests"],
                           handlers=make_handlers(deps_of(s)), batch_handler=make_batch_handler(deps_of(s)), batch_types=REQUEST_EVENTS)
    assert isinstance(runner.batched, Batched)
    return runner


async def state(app):
    """Everything the figures are: observations (but the write time), indicators' state, facts."""
    async with app.state.ctx.engine.connect() as conn:
        obs = (await conn.execute(sa.select(Indicator.code, observations).join(
            Indicator, Indicator.id == observations.c.indicator_id))).mappings().all()
        inds = (await conn.execute(sa.select(
            Indicator.code, Indicator.status, Indicator.computed_status, Indicator.latest_value,
            Indicator.latest_period_start))).all()
        facts = (await conn.execute(sa.select(RequestFact))).all()
    skip = {"indicator_id", "updated_at", "revision", "source", "updated_by"}
    return (sorted(tuple((k, v) for k, v in r.items() if k not in skip) for r in obs), sorted(inds),
            sorted(tuple(f) for f in facts))


async def revisions(app, *, derived: bool | None = None):
    stmt = sa.select(sa.func.count()).select_from(ObservationRevision).join(
        Indicator, Indicator.id == ObservationRevision.indicator_id)
    if derived is not None:
        stmt = stmt.where(Indicator.derived_from.is_not(None) if derived else Indicator.derived_from.is_(None))
    async with app.state.ctx.engine.connect() as conn:
        return (await conn.execute(stmt)).scalar_one()


async def test_batches_give_the_figures_of_one_at_a_time_and_apply_duplicates_once(
    client, app, indicators_settings, db_factory
):
    reqs = make_requests(seed=11, n=80)
    now = datetime.now(UTC)
    for r in reqs[:20]:  # a share of this month's requests too: the running figures of the current period
        r["requested"] = now - timedelta(hours=random.Random(r["id"]).uniform(1, 6))
        r["expected"] = r["requested"] + timedelta(days=2)
        r["closed"] = None
        r.pop("score", None)
    evs = events_for(reqs)
    rng = random.Random(5)
    order = list(range(len(evs)))
    for _ in range(20):  # some out of order: the later state wins either way
        i = rng.randrange(len(order) - 1)
        order[i], order[i + 1] = order[i + 1], order[i]
    records = [_record(evs[i], off) for off, i in enumerate(order)]

    single = one_by_one(app)
    for rec in records:
        assert await single.process(rec) == "processed"

    other = create_app(indicators_settings.model_copy(update={"database_url": db_factory("indicators")}))
    async with app_client(other):
        await preload_departments(other)
        runner = batched(other)
        k, offset, outcomes = 0, 10_000, []
        while k < len(records):
            size = rng.randint(1, 40)
            chunk = records[k : k + size]
            chunk = chunk + [records[rng.randrange(0, k + len(chunk))]]  # a redelivery, within or across batches
            outcomes += await runner.process_batch([_record(evs[order[r.offset]], offset + j) for j, r in enumerate(chunk)])
            offset += len(chunk)
            k += size
        assert outcomes.count("processed") == len(records)
        assert await state(other) == await state(app)
        # the second half of history: every record again, in batches -> nothing changes
        before = await state(other)
        assert set(await runner.process_batch(records)) == {"duplicate"}
        assert await state(other) == before
        assert await revisions(other) <= await revisions(app)


async def test_derived_figures_keep_revisions_only_for_ended_periods_and_staff_values_keep_all(client, app):
    runner = batched(app)
    now = datetime.now(UTC)
    reqs = [{"id": f"SR-N{i:03d}", "service": "POTHOLE", "requested": now - timedelta(minutes=300 - i),
             "expected": now + timedelta(days=3)} for i in range(60)]
    evs = [make_event(_request_payload(r, RequestCreated), subject=r["id"]) for r in reqs]
    for k in range(0, len(evs), 7):  # many small batches: the running figures change each time
        await runner.process_batch([_record(e, k + j) for j, e in enumerate(evs[k : k + 7])])
    opened = (await client.get(f"/indicators/311.{DEPT}.opened/observations")).json()
    assert opened[-1]["period"] == month(0) and opened[-1]["value"] == 60
    assert opened[-1]["revision"] > 1  # the row was rewritten batch after batch...
    assert await revisions(app, derived=True) == 0  # ...but the current period's running count keeps no history

    # a late event moves an ended period's figure: that change is kept
    old = make_requests(seed=3, n=12)
    await runner.process_batch([_record(e, 1000 + j) for j, e in enumerate(events_for(old))])
    kept = await revisions(app, derived=True)
    r0 = next(r for r in old if r.get("closed"))
    reopened = make_event(_request_payload(r0, RequestUpdated, status="open", detailed_status="reopened",
                                           updated_datetime=now, change="reopened"), subject=r0["id"])
    await runner.process_batch([_record(reopened, 2000)])
    assert await revisions(app, derived=True) > kept

    # a staff-entered value keeps every revision
    await create(client, code="STREETS.staffed", unit="count", kind="output", direction="up")
    for value in (10, 11, 12, 12, 13):
        r = await client.post("/indicators/STREETS.staffed/observations", headers=W,
                              json={"period": month(0), "value": value})
        assert r.status_code in (200, 201), r.text
    assert await revisions(app, derived=False) == 3  # 10->11, 11->12, 12->13 (the same 12 is no change)
