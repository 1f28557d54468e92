"""311 becomes Stat: a sequence of request events gives the exact figures (computed here
independently); redelivered and stale events change nothing; on SQLite and PostgreSQL."""

import random
import statistics
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord
from ind_helpers import CITY, deps_of, month, month_start

from citystat_common.events import RequestClosed, RequestCreated, RequestFeedback, RequestUpdated, make_event
from citystat_common.runtime import make_consumer
from citystat_common.testing import eventually
from indicators.handlers import GROUP_ID, make_handlers
from indicators.models import PLUMBING, observations

DEPT = "STREETS"


def _record(env, offset):
    raw = env.to_bytes()
    return ConsumerRecord("311.requests", 0, offset, 0, 0, env.subject.encode(), raw, None, 0, len(raw), [])


def _request_payload(r, cls, **over):
    data = dict(
        service_request_id=r["id"], service_code=r["service"], service_name=r["service"].title(), department_code=DEPT,
        channel="phone", status="open", detailed_status="open", requested_datetime=r["requested"],
        expected_datetime=r["expected"], updated_datetime=r["requested"], first_contact_resolution=False,
        duplicate_of=r.get("duplicate_of"), change="created",
    )
    data.update(over)
    return cls(**data)


def make_requests(seed=7, n=60):
    rng = random.Random(seed)
    start = datetime.combine(month_start(2), datetime.min.time(), CITY)  # month(2) at local midnight
    out = []
    for i in range(n):
        requested = start + timedelta(days=rng.uniform(0, 26), hours=rng.uniform(0, 23))
        sla = rng.choice([1, 3, 5])
        r = {"id": f"SR-{i:04d}", "service": rng.choice(["POTHOLE", "STREETLIGHT"]), "requested": requested.astimezone(UTC),
             "expected": (requested + timedelta(days=sla)).astimezone(UTC), "fcr": rng.random() < 0.2}
        fate = rng.random()
        if fate < 0.7:
            r["closed"] = (requested + timedelta(days=rng.uniform(0.1, 2 * sla))).astimezone(UTC)
        elif fate < 0.85:
            r["closed"] = (requested + timedelta(days=rng.uniform(30, 40))).astimezone(UTC)  # next month or later
        else:
            r["closed"] = None  # still open
        if i % 17 == 0:
            r["duplicate_of"] = "SR-0001"
        if r["closed"] and rng.random() < 0.5:
            r["score"] = rng.randint(1, 5)
            r["feedback_at"] = r["closed"] + timedelta(hours=rng.uniform(1, 48))
        out.append(r)
    return out


def expected_figures(reqs, start, end, service=None):
    """Independent computation of the documented definitions for a fully past period."""
    rs = [r for r in reqs if service is None or r["service"] == service]
    c = end
    closed = [r for r in rs if r["closed"] and start <= r["closed"] < c]
    real = [r for r in closed if not r.get("duplicate_of")]
    hits = sum(1 for r in real if r["closed"] <= r["expected"])
    overdue_open = [r for r in rs if r["requested"] < c and (r["closed"] is None or r["closed"] >= c)
                    and r["expected"] < c and not r.get("duplicate_of")]
    days = [(r["closed"] - r["requested"]).total_seconds() / 86400 for r in real]
    fb = [r["score"] for r in rs if r.get("score") and start <= r["feedback_at"] < c]
    return {
        "opened": sum(1 for r in rs if start <= r["requested"] < c),
        "closed": len(closed),
        "closed_within_sla": 100 * hits / (len(real) + len(overdue_open)),
        "median_days_to_close": statistics.median(days),
        "p90_days_to_close": statistics.quantiles(days, n=10, method="inclusive")[8],
        "backlog": sum(1 for r in rs if r["requested"] < c and (r["closed"] is None or r["closed"] >= c)),
        "first_contact_share": 100 * sum(1 for r in real if r["fcr"]) / len(real),
        "satisfaction": statistics.fmean(fb) if fb else None,
    }


def events_for(reqs):
    evs = []
    for r in reqs:
        evs.append(make_event(_request_payload(r, RequestCreated), subject=r["id"]))
        if r["closed"]:
            evs.append(make_event(_request_payload(
                r, RequestClosed, status="closed", detailed_status="closed", closed_datetime=r["closed"],
                updated_datetime=r["closed"], first_contact_resolution=r["fcr"], change="closed"), subject=r["id"]))
        if r.get("score"):
            evs.append(make_event(RequestFeedback(
                service_request_id=r["id"], service_code=r["service"], department_code=DEPT, score=r["score"],
                submitted_at=r["feedback_at"], closed_datetime=r["closed"]), subject=r["id"]))
    return evs


async def _snapshot(app):
    async with app.state.ctx.engine.connect() as conn:
        rows = (await conn.execute(sa.select(observations).order_by(observations.c.indicator_id,
                                                                     observations.c.period_start))).mappings().all()
    return [dict(r) for r in rows]


async def _values(client, code):
    return {o["period"]: o["value"] for o in (await client.get(f"/indicators/{code}/observations")).json()}


async def test_request_events_give_exact_figures_and_redelivery_changes_nothing(client, app):
    settings = app.state.ctx.settings
    runner = make_consumer(settings, app.state.ctx.engine, PLUMBING, group_id=GROUP_ID, topics=["311.requests"],
                           handlers=make_handlers(deps_of(settings)))
    reqs = make_requests()
    evs = events_for(reqs)
    # out of order: some closures arrive before their creation (the later state wins)
    rng = random.Random(3)
    order = list(range(len(evs)))
    for _ in range(15):
        i = rng.randrange(len(order) - 1)
        order[i], order[i + 1] = order[i + 1], order[i]
    records = [_record(evs[i], off) for off, i in enumerate(order)]
    for rec in records:
        assert await runner.process(rec) in ("processed",)
    start = datetime.combine(month_start(2), datetime.min.time(), CITY).astimezone(UTC)
    end = datetime.combine(month_start(1), datetime.min.time(), CITY).astimezone(UTC)
    want = expected_figures(reqs, start, end)
    for metric, value in want.items():
        got = await _values(client, f"311.{DEPT}.{metric}")
        if value is None:
            assert month(2) not in got
        else:
            assert abs(got[month(2)] - value) < 1e-9, (metric, got.get(month(2)), value)
    svc = expected_figures(reqs, start, end, service="POTHOLE")
    for metric in ("opened", "closed_within_sla", "backlog", "median_days_to_close", "p90_days_to_close"):
        got = await _values(client, f"311.{DEPT}.POTHOLE.{metric}")
        assert abs(got[month(2)] - svc[metric]) < 1e-9, metric
    # the derived indicators are ordinary indicators with the right attributes and editable targets
    sla = (await client.get(f"/indicators/311.{DEPT}.closed_within_sla")).json()
    assert (sla["unit"], sla["direction"], sla["kind"], sla["function_tag"], sla["derived_from"]) == (
        "percentage", "up", "quality", "customer_service", "311")
    obs = {o["period"]: o for o in (await client.get(f"/indicators/311.{DEPT}.closed_within_sla/observations")).json()}
    assert obs[month(2)]["target"] == 80
    expect_status = "green" if want["closed_within_sla"] >= 76 else "yellow" if want["closed_within_sla"] >= 72 else "red"
    assert obs[month(2)]["status"] == expect_status

    before = await _snapshot(app)
    # redelivery: the same records again -> the inbox skips them
    for rec in records:
        assert await runner.process(rec) == "duplicate"
    # a stale state under a new event id (an 'updated' older than the closure) changes nothing either
    r0 = next(r for r in reqs if r["closed"] and r["closed"] < end)
    stale = make_event(_request_payload(r0, RequestUpdated, updated_datetime=r0["requested"] + timedelta(seconds=1),
                                        change="acknowledged"), subject=r0["id"])
    assert await runner.process(_record(stale, 10_000)) == "processed"
    assert await _snapshot(app) == before

    # a late event for an old request does move the figures: reopening a closed request
    reopened = make_event(_request_payload(r0, RequestUpdated, status="open", detailed_status="reopened",
                                           updated_datetime=datetime.now(UTC), change="reopened"), subject=r0["id"])
    assert await runner.process(_record(reopened, 10_001)) == "processed"
    r0["closed"] = None
    r0.pop("score", None)
    again = expected_figures(reqs, start, end)
    got = await _values(client, f"311.{DEPT}.backlog")
    assert got[month(2)] == again["backlog"] == want["backlog"] + 1  # open again at the end of that month
    assert abs((await _values(client, f"311.{DEPT}.closed_within_sla"))[month(2)] - again["closed_within_sla"]) < 1e-9


async def test_a_transfer_moves_the_request_to_the_new_department(client, app):
    settings = app.state.ctx.settings
    runner = make_consumer(settings, app.state.ctx.engine, PLUMBING, group_id=GROUP_ID, topics=["311.requests"],
                           handlers=make_handlers(deps_of(settings)))
    now = datetime.now(UTC)
    r = {"id": "SR-T1", "service": "GRAFFITI", "requested": now - timedelta(hours=3), "expected": now + timedelta(days=3)}
    created = make_event(_request_payload(r, RequestCreated), subject=r["id"])
    moved = make_event(_request_payload(r, RequestUpdated, department_code="WATER", previous_department_code=DEPT,
                                        updated_datetime=now - timedelta(hours=1), change="transferred"), subject=r["id"])
    await runner.process(_record(created, 1))
    assert (await _values(client, f"311.{DEPT}.backlog"))[month(0)] == 1
    await runner.process(_record(moved, 2))
    assert (await _values(client, f"311.{DEPT}.backlog"))[month(0)] == 0
    assert (await _values(client, "311.WATER.backlog"))[month(0)] == 1
    assert (await _values(client, "311.WATER.opened"))[month(0)] == 1


async def test_the_refresh_turns_requests_that_run_past_their_service_level_into_misses(client, app):
    """No event arrives when a request goes overdue: the worker's periodic refresh recomputes."""
    from indicators import derived311

    settings = app.state.ctx.settings
    runner = make_consumer(settings, app.state.ctx.engine, PLUMBING, group_id=GROUP_ID, topics=["311.requests"],
                           handlers=make_handlers(deps_of(settings)))
    now = datetime.now(UTC)
    r = {"id": "SR-R1", "service": "POTHOLE", "requested": now - timedelta(hours=1), "expected": now + timedelta(hours=1)}
    await runner.process(_record(make_event(_request_payload(r, RequestCreated), subject=r["id"]), 1))
    code = f"311.{DEPT}.closed_within_sla"
    assert (await client.get(f"/indicators/{code}/observations")).json() == []  # nothing closed, nothing overdue
    later = now + timedelta(hours=2)
    async with app.state.ctx.uow() as uow:
        assert await derived311.refresh_current(uow, deps_of(settings), now=later) > 0
        await uow.commit()
    obs = (await client.get(f"/indicators/{code}/observations")).json()
    assert obs[-1]["value"] == 0 and obs[-1]["status"] == "red"


async def test_feedback_before_the_request_is_kept(client, app):
    settings = app.state.ctx.settings
    runner = make_consumer(settings, app.state.ctx.engine, PLUMBING, group_id=GROUP_ID, topics=["311.requests"],
                           handlers=make_handlers(deps_of(settings)))
    now = datetime.now(UTC)
    r = {"id": "SR-F1", "service": "POTHOLE", "requested": now - timedelta(hours=5), "expected": now + timedelta(days=1),
         "closed": now - timedelta(hours=2), "fcr": True}
    fb = make_event(RequestFeedback(service_request_id="SR-F1", service_code="POTHOLE", department_code=DEPT, score=2,
                                    submitted_at=now - timedelta(hours=1)), subject="SR-F1")
    closed = make_event(_request_payload(r, RequestClosed, status="closed", closed_datetime=r["closed"],
                                         updated_datetime=r["closed"], first_contact_resolution=True), subject="SR-F1")
    created = make_event(_request_payload(r, RequestCreated), subject="SR-F1")
    for off, env in enumerate([fb, closed, created]):  # newest first: the creation arrives last and is stale
        assert await runner.process(_record(env, off)) == "processed"
    period = month(0) if r["closed"].astimezone(CITY).month == datetime.now(UTC).astimezone(CITY).month else month(1)
    vals = {m: (await _values(client, f"311.{DEPT}.{m}")) for m in ("opened", "closed", "satisfaction",
                                                                     "first_contact_share", "closed_within_sla")}
    assert sum(vals["opened"].values()) == 1 and sum(vals["closed"].values()) == 1
    assert list(vals["satisfaction"].values()) == [2] and list(vals["first_contact_share"].values()) == [100]
    assert vals["closed_within_sla"][period] == 100


async def test_the_refresh_waiting_on_the_consumer_computes_from_its_facts_and_keeps_the_hysteresis(
    client, app, db_kind
):
    """The consumer and the scheduler's refresh write the same indicators. A refresh that has to
    wait for the consumer's commit must compute from the facts that commit brings: a figure computed
    before it (73.7%) landing after the consumer's 88.9% would put a stale value on a row no longer
    red, and a running period that was red would read yellow within the hysteresis band."""
    import asyncio

    from indicators import derived311

    ctx = app.state.ctx
    deps = deps_of(ctx.settings)
    now = datetime.now(UTC)
    code = f"311.{DEPT}.closed_within_sla"

    def late(i):
        r = {"id": f"SR-L{i}", "service": "POTHOLE", "requested": now - timedelta(hours=3),
             "expected": now - timedelta(hours=1)}
        return _request_payload(r, RequestCreated)

    def on_time(i):
        r = {"id": f"SR-K{i}", "service": "POTHOLE", "requested": now - timedelta(minutes=30),
             "expected": now + timedelta(days=2)}
        closed = now - timedelta(minutes=10)
        return _request_payload(r, RequestClosed, status="closed", detailed_status="closed", closed_datetime=closed,
                                updated_datetime=closed, change="closed")

    async def today():
        obs = (await client.get(f"/indicators/{code}/observations")).json()
        return obs[-1]["value"], obs[-1]["status"]

    for batch in ([late(i) for i in range(5)], [on_time(i) for i in range(14)]):
        async with ctx.uow() as uow:
            await derived311.apply_events(uow, deps, events=batch, now=now)
            await uow.commit()
    value, status = await today()
    assert abs(value - 100 * 14 / 19) < 1e-9 and status == "red"  # 73.7%: red still (hysteresis)

    async def refresh():
        async with ctx.uow() as uow:
            await derived311.refresh_current(uow, deps, now=now)
            await uow.commit()

    consumer = ctx.uow()
    async with consumer as uow:
        await derived311.apply_events(uow, deps, events=[on_time(i) for i in range(14, 40)], now=now)
        refreshing = asyncio.create_task(refresh())
        if db_kind == "postgres":
            async def refresh_waits():  # on the consumer's row locks
                async with ctx.engine.connect() as conn:
                    return (await conn.execute(sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock'"))).scalar_one()
            await eventually(refresh_waits, timeout=30)
        else:  # SQLite: BEGIN IMMEDIATE makes the refresh wait before it reads anything
            await asyncio.sleep(0.2)
        await uow.commit()
    await refreshing
    value, status = await today()
    assert abs(value - 100 * 40 / 45) < 1e-9 and status == "green", (value, status)


async def test_a_city_s_own_codes_become_slugs_in_indicator_codes_and_stay_as_they_are_elsewhere(client, app):
    """"NYC H+H" and "Abandoned Bike" (issue 20): the derived indicators' codes hold their slugs
    (citystat_common.codes.code_slug), the indicator its department's code as it is, the name the
    service as the city calls it; the periodic refresh finds the scope behind the slugs again."""
    from citystat_common.codes import code_slug
    from indicators import derived311

    settings = app.state.ctx.settings
    runner = make_consumer(settings, app.state.ctx.engine, PLUMBING, group_id=GROUP_ID, topics=["311.requests"],
                           handlers=make_handlers(deps_of(settings)))
    now = datetime.now(UTC)
    r = {"id": "SR-C1", "service": "Abandoned Bike", "requested": now - timedelta(hours=1), "expected": now + timedelta(hours=1)}
    created = _request_payload(r, RequestCreated, department_code="NYC H+H", service_name="Abandoned bicycle")
    await runner.process(_record(make_event(created, subject=r["id"]), 1))
    dept, service = code_slug("NYC H+H"), code_slug("Abandoned Bike")
    assert dept != "NYC H+H" and service != "Abandoned Bike"
    whole = (await client.get(f"/indicators/311.{dept}.opened")).json()
    assert whole["department_code"] == "NYC H+H"
    one = (await client.get(f"/indicators/311.{dept}.{service}.opened")).json()
    assert one["department_code"] == "NYC H+H" and one["name"].endswith(": Abandoned bicycle (Abandoned Bike)")
    listed = (await client.get("/indicators", params={"department": "NYC H+H", "page_size": 50})).json()
    assert f"311.{dept}.{service}.opened" in {i["code"] for i in listed["items"]}
    code = f"311.{dept}.{service}.closed_within_sla"
    assert (await client.get(f"/indicators/{code}/observations")).json() == []
    async with app.state.ctx.uow() as uow:
        assert await derived311.refresh_current(uow, deps_of(settings), now=now + timedelta(hours=2)) > 0
        await uow.commit()
    obs = (await client.get(f"/indicators/{code}/observations")).json()
    assert obs[-1]["value"] == 0  # overdue: found through the slugs
