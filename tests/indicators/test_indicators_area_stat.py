"""Stat by area (issue 21) on SQLite and PostgreSQL: 311 events carrying their requests' wards give
each ward, and each department in each ward, the derived figures computed here independently from
the same requests; a layer the city does not mark and a request outside every ward give none; a
transfer moves the request's figure to the new department in its ward; the refresh keeps the
running period; the figures are ordinary indicators (target, status) kept off the departments'
board; the dashboard of one ward shows its map, its table and its departments side by side."""

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
import sqlalchemy as sa
from area_helpers import DEPTS, area_app, area_events, area_settings, make_area_requests, records
from ind_helpers import CITY, deps_of, month, month_start, preload_departments
from test_indicators_derived311 import _record, _request_payload, expected_figures

from citystat_common.codes import code_slug
from citystat_common.events import RequestCreated, RequestUpdated, make_event
from citystat_common.runtime import make_consumer
from citystat_common.testing import app_client
from indicators import area_stat
from indicators.handlers import GROUP_ID, REQUEST_EVENTS, make_batch_handler, make_handlers
from indicators.models import PLUMBING, Indicator, RequestArea

METRICS = ("opened", "closed_within_sla", "median_days_to_close", "backlog")


@pytest.fixture
async def area(indicators_settings):
    app = area_app(area_settings(indicators_settings))
    async with app_client(app) as client:
        await preload_departments(app)
        yield app, client


def _runner(app, *, batched=False):
    s = app.state.ctx.settings
    extra = {"batch_handler": make_batch_handler(deps_of(s)), "batch_types": REQUEST_EVENTS} if batched else {}
    return make_consumer(s, app.state.ctx.engine, PLUMBING, group_id=GROUP_ID, topics=["311.requests"],
                         handlers=make_handlers(deps_of(s)), **extra)


async def _values(client, code):
    r = await client.get(f"/indicators/{code}/observations")
    return {o["period"]: o for o in r.json()} if r.status_code == 200 else None


def _month2():
    start = datetime.combine(month_start(2), datetime.min.time(), CITY).astimezone(UTC)
    end = datetime.combine(month_start(1), datetime.min.time(), CITY).astimezone(UTC)
    return start, end


async def _check_figures(client, reqs, depts=(None, *DEPTS)):
    start, end = _month2()
    checked = 0
    for ward in ("1", "2", "3", "North & East"):
        for dept in depts:
            rs = [r for r in reqs if r["ward"] == ward and (dept is None or r["dept"] == dept)]
            want = expected_figures(rs, start, end)
            code = area_stat.AreaScope("ward", ward, dept).indicator_code
            for m in METRICS:
                got = await _values(client, code(m))
                assert got is not None, code(m)
                assert abs(got[month(2)]["value"] - want[m]) < 1e-9, (ward, dept, m, got[month(2)]["value"], want[m])
                checked += 1
    assert checked == 4 * len(depts) * 4


async def test_events_with_areas_give_each_ward_and_its_departments_their_figures(area):
    app, client = area
    reqs = make_area_requests()
    assert {r["ward"] for r in reqs} == {"1", "2", "3", "North & East", None}
    evs = area_events(reqs)
    evs = evs[1::2] + evs[::2]  # out of order: many closures before their creation (the later state wins)
    runner = _runner(app, batched=True)
    recs = records(evs)
    for i in range(0, len(recs), 70):  # fetches of the worker's consumer
        assert set(await runner.process_batch(recs[i : i + 70])) == {"processed"}
    await _check_figures(client, reqs)

    # an area code that is not a segment gets its slug; the name says the ward in the city's words
    ne = (await client.get(f"/indicators/311-area.ward.{code_slug('North & East')}.backlog")).json()
    assert ne["name"] == "311 open backlog at period end: ward North & East"
    assert (ne["department_code"], ne["derived_from"]) == ("CITYWIDE", "311-area")
    # evaluated like any other: the standing target, and the status it gives
    sla = await _values(client, "311-area.ward.1.closed_within_sla")
    row = sla[month(2)]
    assert row["target"] == 80
    assert row["status"] == ("green" if row["value"] >= 76 else "yellow" if row["value"] >= 72 else "red")
    # the district layer is kept but not marked; outside every ward counts nowhere
    async with app.state.ctx.engine.connect() as conn:
        kept = dict((await conn.execute(sa.select(RequestArea.layer, sa.func.count()).group_by(RequestArea.layer))).all())
        codes = (await conn.execute(sa.select(Indicator.code).where(Indicator.derived_from == "311-area"))).scalars().all()
    assert kept == {"district": len(reqs), "ward": sum(1 for r in reqs if r["ward"] is not None)}
    assert codes and all(c.startswith("311-area.ward.") for c in codes)
    assert len(codes) == 4 * 3 * 4  # four wards, as a whole and per department, four figures each
    # the departments' board has none of them; the department's own 311 figures count every ward
    board = (await client.get("/dashboard", params={"refresh": 0})).text
    assert "311-area." not in board and "311.STREETS.opened" in board
    assert '<a href="/dashboard/areas">By area</a>' in board
    layers = (await client.get("/dashboard/areas")).text
    assert '<a href="/dashboard/areas/ward">Wards</a>' in layers
    dept_all = await _values(client, "311.STREETS.opened")
    assert dept_all[month(2)]["value"] == sum(1 for r in reqs if r["dept"] == "STREETS" and r["requested"] < _month2()[1])


async def test_events_one_at_a_time_give_the_same_figures(area):
    app, client = area
    reqs = make_area_requests(seed=5, n=60)
    runner = _runner(app)
    for rec in records(area_events(reqs)):
        assert await runner.process(rec) == "processed"
    await _check_figures(client, reqs, depts=(None,))


async def test_a_transfer_moves_the_request_to_the_new_department_in_its_ward(area):
    app, client = area
    runner = _runner(app)
    now = datetime.now(UTC)
    r = {"id": "SR-T9", "service": "GRAFFITI", "requested": now - timedelta(hours=3), "expected": now + timedelta(days=3)}
    created = make_event(_request_payload(r, RequestCreated, areas={"ward": "2"}), subject=r["id"])
    moved = make_event(_request_payload(r, RequestUpdated, department_code="WATER", previous_department_code="STREETS",
                                        updated_datetime=now - timedelta(hours=1), change="transferred"), subject=r["id"])
    assert await runner.process(_record(created, 1)) == "processed"
    assert (await _values(client, "311-area.ward.2.STREETS.backlog"))[month(0)]["value"] == 1
    assert await runner.process(_record(moved, 2)) == "processed"
    assert (await _values(client, "311-area.ward.2.STREETS.backlog"))[month(0)]["value"] == 0
    assert (await _values(client, "311-area.ward.2.WATER.backlog"))[month(0)]["value"] == 1
    assert (await _values(client, "311-area.ward.2.backlog"))[month(0)]["value"] == 1  # still in the ward

    # the refresh: a request running past its service level turns the ward's share red with no event
    late = {"id": "SR-T10", "service": "GRAFFITI", "requested": now - timedelta(hours=5),
            "expected": now - timedelta(hours=4)}
    assert await runner.process(_record(make_event(_request_payload(late, RequestCreated, areas={"ward": "2"}),
                                                   subject=late["id"]), 3)) == "processed"
    async with app.state.ctx.uow() as uow:
        assert [s.dept for s in await area_stat.area_scopes(uow, deps_of(app.state.ctx.settings))] == [
            None, "STREETS", "WATER"]
        assert await area_stat.refresh_areas(uow, deps_of(app.state.ctx.settings)) > 0
        await uow.commit()
    share = (await _values(client, "311-area.ward.2.closed_within_sla"))[month(0)]
    assert share["value"] == 0 and share["status"] == "red"


async def test_the_dashboard_of_one_ward_shows_its_map_its_table_and_its_departments(area):
    app, client = area
    runner = _runner(app, batched=True)
    assert set(await runner.process_batch(records(area_events(make_area_requests(seed=8, n=80))))) == {"processed"}
    page = await client.get("/dashboard", params={"area": "ward:2"})
    assert page.status_code == 200
    html = page.text
    assert "<h1>Ward Old Town (2)</h1>" in html
    svg = re.search(r'<figure id="area-map">(.*?)</figure>', html, re.S).group(1)
    assert svg.count("<path ") == 4  # every ward drawn
    assert re.search(r'stroke-width="5" data-code="2"', svg)  # the chosen ward outlined
    rows = [unescape(c) for c in re.findall(r'<tr data-code="([^"]+)"', html)]
    assert sorted(rows) == ["1", "2", "3", "North & East"]
    assert 'id="area-tiles"' in html and html.count('data-code="311-area.ward.2.') == 4 + 4 * 2
    depts = re.search(r'<div class="depts side" id="area-departments">(.*)</div>', html, re.S).group(1)
    assert 'id="d-STREETS"' in depts and 'id="d-WATER"' in depts
    # the map coloured by another figure: each ward's state is its backlog indicator's
    backlog = await client.get("/dashboard/areas/ward", params={"metric": "backlog"})
    assert backlog.status_code == 200
    for ward in ("1", "3"):
        i = (await client.get(f"/indicators/311-area.ward.{ward}.backlog")).json()
        row = re.search(rf'<tr data-code="{ward}".*?</tr>', backlog.text, re.S).group(0)
        assert f"status-{i['state']}" in row
    one_dept = await client.get("/dashboard/areas/ward", params={"metric": "opened", "department": "WATER"})
    assert "Water" in one_dept.text and one_dept.status_code == 200
    report = await client.get("/dashboard/areas/report", params={"area": "ward:2"})
    assert report.status_code == 200 and 'id="indicators"' in report.text and "Old Town as a whole" in report.text
    # a layer the city does not mark, and a malformed area, say so
    assert (await client.get("/dashboard", params={"area": "district:A"})).status_code == 404
    assert (await client.get("/dashboard", params={"area": "ward"})).status_code == 422
    assert (await client.get("/dashboard/areas/district")).status_code == 404
