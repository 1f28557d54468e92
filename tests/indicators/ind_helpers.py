from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from citystat_common.events import DepartmentUpserted
from citystat_common.testing import auth, midday_timezone
from indicators.deps import IndicatorsDeps

W = auth("analyst")
# The city's clock runs at midday for these tests (fixed once per run), so events placed hours
# around "now" fall on today's date in every period, whenever the suite runs.
CITY_TIMEZONE = midday_timezone()
CITY = ZoneInfo(CITY_TIMEZONE)


def deps_of(settings) -> IndicatorsDeps:
    """What a composition root builds from these settings, for tests that call domain functions or
    the consumer's handlers directly (no directory port, as in the worker)."""
    return IndicatorsDeps(settings=settings)


def month(k: int) -> str:
    """The label of the month k months before the current one (city time)."""
    today = datetime.now(UTC).astimezone(CITY).date()
    idx = today.year * 12 + today.month - 1 - k
    return f"{idx // 12}-{idx % 12 + 1:02d}"


def month_start(k: int) -> date:
    y, m = month(k).split("-")
    return date(int(y), int(m), 1)


def indicator(code="STREETS.potholes", **kw):
    body = {
        "code": code, "name": "Potholes repaired within 3 days", "department_code": "STREETS", "unit": "percentage",
        "kind": "quality", "direction": "up", "frequency": "monthly", "description": "Share of pothole requests "
        "repaired within three days.", "critical": True, "function_tag": "performance",
    }
    body.update(kw)
    return body


async def create(client, **kw):
    r = await client.post("/indicators", json=indicator(**kw), headers=W)
    assert r.status_code == 201, r.text
    return r.json()


def fy_now() -> int:
    """The city's current fiscal year (July start, the default)."""
    from indicators.periods import fiscal_year

    return fiscal_year(datetime.now(UTC).astimezone(CITY).date(), 7)


def standing_period() -> str:
    """The first month a target may be set for (five fiscal years back): a target from there on
    covers every period a test observes."""
    return f"{fy_now() - 6}-07"


async def target(client, code, value, period=None, fiscal_year=None, applies=None):
    """A target; given by period it applies onward unless told otherwise (a standing target)."""
    t = {"value": value}
    if fiscal_year:
        t["fiscal_year"] = fiscal_year
    else:
        t["period"] = period or standing_period()
        t["applies"] = applies or "onward"
    if applies:
        t["applies"] = applies
    r = await client.put(f"/indicators/{code}/targets", json={"targets": [t]}, headers=W)
    assert r.status_code == 200, r.text


async def observe(client, code, period, value, **kw):
    r = await client.post(f"/indicators/{code}/observations", json={"period": period, "value": value, **kw}, headers=W)
    assert r.status_code == 200, r.text
    return r.json()


async def outbox_events(app, indicator_id=None):
    import sqlalchemy as sa

    from citystat_common.events import parse_event

    ob = app.state.ctx.tables.outbox
    async with app.state.ctx.engine.connect() as conn:
        rows = (await conn.execute(sa.select(ob.c.payload).order_by(ob.c.id))).scalars().all()
    out = [parse_event(r) for r in rows]
    return [(e, p) for e, p in out if indicator_id is None or e.subject == indicator_id]


async def feed(app, code, seq):
    """Record (months_ago, value) pairs as if each arrived the day after its month ended, so the
    indicator is current (not missing) at each step: real-time order, simulated clock."""
    from datetime import timedelta

    from indicators import service
    from indicators.periods import local_midnight

    ctx = app.state.ctx
    out = []
    for k, v in seq:
        async with ctx.uow() as uow:
            ind = await service.get_indicator(uow, code)
            p = service._period_cached(ind.frequency, month(k), ctx.settings.fiscal_year_start_month)
            now = local_midnight(p.end + timedelta(days=1), CITY) + timedelta(hours=1)
            await service.record_observations(uow, deps_of(ctx.settings), items=[service.ObsIn(ind, p, v)], actor="test",
                                              source="api", now=now)
            out.append(ind.status)
            await uow.commit()
    return out


DEMO_DEPTS = [
    ("STREETS", "Streets Department", "OPERATIONS", "Operations & Infrastructure"),
    ("WATER", "Water Department", "OPERATIONS", "Operations & Infrastructure"),
    ("POLICE", "Police Department", "SAFETY", "Public Safety"),
    ("HEALTH", "Department of Public Health", "HEALTH_HS", "Health & Human Services"),
]


async def preload_departments(app, rows=None):
    """What directory.department.upserted events would have stored: call the handler's service function."""
    from citystat_common.events import make_event
    from indicators.handlers import make_handlers

    handler = make_handlers(deps_of(app.state.ctx.settings))["directory.department.upserted"]
    rows = DEMO_DEPTS if rows is None else rows
    async with app.state.ctx.uow() as uow:
        for code, name, ccode, cname in rows:
            payload = DepartmentUpserted(department_id=f"id-{code}", code=code, name=name, cluster_code=ccode,
                                         cluster_name=cname)
            await handler(uow, make_event(payload, subject=payload.department_id), payload)
        await uow.commit()


