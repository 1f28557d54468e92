"""Issue 22, "the dashboard leadership reads": what is wrong first within each department and across
the city, a summary line per cluster and department, 311 by service folded under its department,
and every tile and report row against its year (fiscal year to date beside the same periods of the
prior fiscal year, by summary's rules) with its trend read against the desired direction."""

import csv
import io
import re

import pytest
import sqlalchemy as sa
from ind_helpers import create, deps_of, feed, fy_now, month, observe, target

from indicators import derived311


def _codes(html: str) -> list[str]:
    return re.findall(r'<a class="tile[^"]*"[^>]*data-code="([^"]+)"', html)


def _tile(html: str, code: str) -> str:
    m = re.search(rf'<a class="tile[^"]*"[^>]*data-code="{re.escape(code)}".*?</a>', html, re.S)
    assert m, code
    return m.group(0)


async def _streets_and_police(client, app):
    for code, value, critical in (("STREETS.red_big", 20, False), ("STREETS.red_crit", 70, True),
                                  ("STREETS.yellow", 84, True), ("STREETS.green", 95, False),
                                  ("POLICE.red_crit", 50, True)):
        await create(client, code=code, critical=critical, department_code=code.split(".")[0])
        await target(client, code, 90)
        await observe(client, code, month(1), value)
    await create(client, code="STREETS.baseline", critical=False)
    await observe(client, "STREETS.baseline", month(1), 72)
    await create(client, code="STREETS.owed", critical=True)
    await target(client, "STREETS.owed", 90)
    await feed(app, "STREETS.owed", [(4, 20)])  # red once, then its figures stopped


async def test_what_is_wrong_comes_first_in_departments_and_across_the_city(client, app):
    await _streets_and_police(client, app)
    states = {i["code"]: i["state"] for i in (await client.get("/indicators")).json()["items"]}
    assert states["STREETS.owed"] == "no_report" and states["STREETS.yellow"] == "yellow"
    board = (await client.get("/dashboard")).text
    streets = [c for c in _codes(board) if c.startswith("STREETS.")]
    # red (critical first, then the larger miss), yellow, no report, baseline, green
    assert streets == ["STREETS.red_crit", "STREETS.red_big", "STREETS.yellow", "STREETS.owed",
                       "STREETS.baseline", "STREETS.green"]
    assert "Streets Department: 2 red, 1 yellow, 1 no report, 1 building a baseline, 1 green" in board
    assert "Operations &amp; Infrastructure: 2 red, 1 yellow" in board and "Public Safety: 1 red" in board
    # a figure that is owed shows no value as if it were current
    owed = _tile(board, "STREETS.owed")
    assert 'class="val">\u2013<' in owed and "NO REPORT" in owed

    city = (await client.get("/dashboard", params={"view": "city"})).text
    # the worst red of the city first: critical, then the largest miss (police 44% beats streets 22%)
    assert _codes(city)[:3] == ["POLICE.red_crit", "STREETS.red_crit", "STREETS.red_big"]
    assert "The city: 3 red, 1 yellow" in city and "Streets Department" in _tile(city, "STREETS.red_crit")
    # filters stay in the URL, the view among them
    assert 'value="city" selected' in city
    assert 'href="/dashboard.csv?view=city"' in city
    crit = (await client.get("/dashboard", params={"view": "city", "critical": "true"})).text
    assert "STREETS.red_big" not in _codes(crit) and _codes(crit)[0] == "POLICE.red_crit"
    bad = await client.get("/dashboard", params={"view": "everything"})
    assert bad.status_code == 422 and "view" in bad.text


async def test_a_deputy_mayors_cluster_shows_its_departments_side_by_side(client, app):
    await _streets_and_police(client, app)
    await create(client, code="WATER.breaks", department_code="WATER")
    await observe(client, "WATER.breaks", month(1), 80)
    ops = (await client.get("/dashboard", params={"cluster": "OPERATIONS"})).text
    assert '<div class="depts side">' in ops and 'id="d-STREETS"' in ops and 'id="d-WATER"' in ops
    assert "POLICE.red_crit" not in ops and "Operations &amp; Infrastructure</h2>" in ops
    # the department with the worst figure leads
    assert ops.index('id="d-STREETS"') < ops.index('id="d-WATER"')
    one = (await client.get("/dashboard", params={"cluster": "OPERATIONS", "department": "WATER"})).text
    assert '<div class="depts">' in one
    assert '<div class="depts">' in (await client.get("/dashboard")).text


async def test_311_by_service_is_folded_under_its_department(client, app):
    ctx = app.state.ctx
    async with ctx.uow() as uow:
        await derived311.ensure_indicators(uow, deps_of(ctx.settings), dept="STREETS", service=None)
        await derived311.ensure_indicators(uow, deps_of(ctx.settings), dept="STREETS", service="POTHOLE", service_name="Pothole repair")
        await derived311.ensure_indicators(uow, deps_of(ctx.settings), dept="STREETS", service="LIGHT", service_name="Street light out")
        await uow.commit()
    per_service = {c for c in (await client.get("/indicators", params={"page_size": 500})).json()["items"]
                   for c in [c["code"]] if c.count(".") == 3}
    assert len(per_service) == 2 * len(derived311.SERVICE_METRICS)
    for view in ("departments", "city"):
        board = (await client.get("/dashboard", params={"view": view})).text
        shown = set(_codes(board))
        assert "311.STREETS.opened" in shown and not shown & per_service, view
        m = re.search(r'<a href="(/dashboard\?[^"]+)">311 by service: (\d+) figures', board)
        assert m and int(m.group(2)) == len(per_service), view
    link = m.group(1).replace("&amp;", "&")
    assert "services=show" in link and "source=311" in link
    unfolded = (await client.get(link)).text
    assert per_service <= set(_codes(unfolded))
    dept = (await client.get("/dashboard", params={"department": "STREETS"})).text
    m = re.search(r'<a href="(/dashboard\?[^"]+)">311 by service', dept)
    assert m and "department=STREETS" in m.group(1)
    dept_open = (await client.get("/dashboard", params={"department": "STREETS", "services": "show"})).text
    assert "<h4 class=\"services\">311 by service</h4>" in dept_open and per_service <= set(_codes(dept_open))


def _fy_months(fy: int, *months: int) -> list[str]:
    return [f"{fy if m < 7 else fy - 1}-{m:02d}" for m in months]


async def test_each_figure_against_its_year(client):
    """Counts add up, percentages average, a formula is its inputs' totals divided; last year is the
    same months of the previous fiscal year; the tile agrees with /summary."""
    fy = fy_now() - 1
    this, last = _fy_months(fy, 4, 5, 6), _fy_months(fy - 1, 4, 5, 6)
    await create(client, code="SAN.tons", unit="count", kind="output", department_code="STREETS")
    await create(client, code="SAN.spending", unit="currency", kind="input", direction="down", department_code="STREETS")
    await create(client, code="SAN.cost_per_ton", unit="currency", kind="efficiency", direction="down",
                 department_code="STREETS", formula={"numerator": "SAN.spending", "denominator": "SAN.tons"})
    await create(client, code="STREETS.potholes")  # a percentage, higher is better
    await target(client, "STREETS.potholes", 90)
    for months, tons, spend, pct in ((last, (10, 10, 10), (100, 100, 100), (90, 90, 90)),
                                     (this, (10, 2, 5), (100, 300, 150), (80, 70, 60))):
        for m, t, s, p in zip(months, tons, spend, pct, strict=True):
            await observe(client, "SAN.tons", m, t)
            await observe(client, "SAN.spending", m, s)
            await observe(client, "STREETS.potholes", m, p)
    board = (await client.get("/dashboard", params={"department": "STREETS"})).text
    expect = {"SAN.tons": "17 (last year 30)", "SAN.spending": "$550 (last year $300)",
              "SAN.cost_per_ton": "$32.35 (last year $10.00)", "STREETS.potholes": "70.0% (last year 90.0%)"}
    ytd = {"SAN.tons": 17, "SAN.spending": 550, "SAN.cost_per_ton": 550 / 17, "STREETS.potholes": 70}
    for code, words in expect.items():
        tile = _tile(board, code)
        assert f"FY{fy} to date {words}" in tile, (code, tile)
        s = (await client.get(f"/indicators/{code}/summary", params={"period": this[-1]})).json()
        assert s["ytd_value"] == pytest.approx(ytd[code]) and s["ytd_periods"] == 3, code
    # trends over the six periods, read against the desired direction
    assert "higher is better; trend down (not desirable) over 6 periods" in _tile(board, "STREETS.potholes")
    assert "lower is better; trend up (not desirable) over 6 periods" in _tile(board, "SAN.spending")
    assert "higher is better; trend down (not desirable)" in _tile(board, "SAN.tons")
    # the department report of the last of those months (its figures: test_indicators_department_report)
    report = (await client.get("/dashboard/departments/STREETS/report", params={"period": this[-1]})).text
    assert "Fiscal year to date" in report and "Up (not desirable)" in report
    # a figure with no past year says so in words
    await create(client, code="STREETS.new", unit="count", kind="output")
    await observe(client, "STREETS.new", this[-1], 4)
    assert f"FY{fy} to date 4 (none on record last year)" in _tile(
        (await client.get("/dashboard", params={"department": "STREETS"})).text, "STREETS.new")
    rows = {r["indicator_code"]: r for r in csv.DictReader(io.StringIO(
        (await client.get("/dashboard.csv", params={"department": "STREETS"})).text))}
    assert (rows["SAN.tons"]["fytd_value"], rows["SAN.tons"]["fytd_last_year"]) == ("17", "30")
    assert rows["STREETS.potholes"]["trend_direction"] == "down" and rows["STREETS.potholes"]["trend_desirable"] == "False"


async def test_the_board_reads_in_batches_not_a_query_per_tile(client, app):
    engine = app.state.ctx.engine.sync_engine
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    async def queries() -> int:
        seen.clear()
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            assert (await client.get("/dashboard", params={"view": "city"})).status_code == 200
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        return len(seen)

    async def add(codes):
        for c in codes:
            await create(client, code=c, unit="count", kind="output", critical=False)
            await observe(client, c, month(1), 10)
            await observe(client, c, month(2), 12)

    await add(["STREETS.a", "STREETS.b"])
    few = await queries()
    await add([f"STREETS.n{k}" for k in range(12)])
    assert await queries() == few
