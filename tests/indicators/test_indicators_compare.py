"""Issue 22, one measure across the departments that report it: the measure rule (pure), and the page
(which departments appear, the worst first, the same figures as on each department's tile, the ticket
holder on a red row, the link from the drill-down, and unknown or empty measures answered in words)."""

import re
from html import unescape

import pytest
from ind_helpers import DEMO_DEPTS, create, deps_of, feed, month, observe, preload_departments, target
from ticket_helpers import Feed, snap

from indicators import derived311
from indicators.measures import measure_of


@pytest.mark.parametrize(("code", "dept", "source", "measure"), [
    ("STREETS.vacancy", "STREETS", None, "vacancy"),
    ("CONTACT311.vacancy", "CONTACT311", None, "vacancy"),
    ("STREETS.agent.vacancy", "STREETS", None, "agent.vacancy"),
    ("vacancy", "STREETS", None, "vacancy"),           # a code without its department is its own measure
    ("WATER.vacancy", "STREETS", None, "WATER.vacancy"),  # another department's prefix is not taken off
    ("STREETS.", "STREETS", None, "STREETS."),
    ("311.STREETS.opened", "STREETS", "311", "311.opened"),
    ("311.WATER.opened", "WATER", "311", "311.opened"),
    ("311.STREETS.POTHOLE.closed_within_sla", "STREETS", "311", "311.POTHOLE.closed_within_sla"),
    (derived311.indicator_code("WATER", "POTHOLE", "closed_within_sla"), "WATER", "311", "311.POTHOLE.closed_within_sla"),
    ("311.STREETS.opened", "STREETS", None, "311.STREETS.opened"),  # reported by staff: not a 311 figure
])
def test_the_measure_is_the_code_without_its_department(code, dept, source, measure):
    assert measure_of(code, dept, source) == measure


def _rows(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr data-code="([^"]+)" data-state="([^"]+)">', html)


def _cell(html: str, code: str, cls: str) -> str:
    row = re.search(rf'<tr data-code="{re.escape(code)}".*?</tr>', html, re.S)
    assert row, code
    m = re.search(rf'<td class="{cls}">(.*?)</td>', row.group(0), re.S)
    assert m, (code, cls)
    return unescape(re.sub(r"<[^>]+>", "", m.group(1))).strip()


def _tile(html: str, code: str) -> str:
    m = re.search(rf'<a class="tile[^"]*"[^>]*data-code="{re.escape(code)}".*?</a>', html, re.S)
    assert m, code
    return unescape(m.group(0))


async def _vacancies(client, app):
    """One measure, six departments, every state; and codes that end alike but are other measures."""
    await preload_departments(app, [*DEMO_DEPTS, ("PARKS", "Parks and Recreation", "LIFE", "Quality of Life"),
                                    ("LIBRARY", "Free Library", None, None)])
    for code, critical, value in (("STREETS.vacancy", True, 70), ("POLICE.vacancy", False, 50),
                                  ("WATER.vacancy", False, 84), ("PARKS.vacancy", False, 95)):
        await create(client, code=code, department_code=code.split(".")[0], critical=critical,
                     name="Vacancy rate", direction="up")
        await target(client, code, 90)
        await observe(client, code, month(2), value + 2)
        await observe(client, code, month(1), value)
    await create(client, code="HEALTH.vacancy", department_code="HEALTH", critical=False, name="Vacancy rate")
    await observe(client, "HEALTH.vacancy", month(1), 72)  # no target: building a baseline
    await create(client, code="LIBRARY.vacancy", department_code="LIBRARY", critical=True, name="Vacancy rate")
    await target(client, "LIBRARY.vacancy", 90)
    await feed(app, "LIBRARY.vacancy", [(4, 20)])  # its figures stopped: no report
    await create(client, code="STREETS.agent.vacancy", department_code="STREETS", name="Agent vacancy")
    await observe(client, "STREETS.agent.vacancy", month(1), 10)
    await create(client, code="WATER.potholes", department_code="WATER")


async def test_one_measure_across_departments_the_worst_first(client, app):
    await _vacancies(client, app)
    states = {i["code"]: i["state"] for i in (await client.get("/indicators", params={"page_size": 100})).json()["items"]}
    page = await client.get("/dashboard/compare", params={"measure": "vacancy"})
    assert page.status_code == 200, page.text
    rows = _rows(page.text)
    # red (critical first, then the larger miss), yellow, no report, building a baseline, green
    assert [c for c, _ in rows] == ["STREETS.vacancy", "POLICE.vacancy", "WATER.vacancy", "LIBRARY.vacancy",
                                    "HEALTH.vacancy", "PARKS.vacancy"]
    assert [s for _, s in rows] == ["red", "red", "yellow", "no_report", "baseline", "green"]
    assert all(states[c] == s for c, s in rows)
    assert "6 departments: 2 red, 1 yellow, 1 no report, 1 building a baseline, 1 green" in unescape(page.text)
    assert "Streets Department" in page.text and "Operations &amp; Infrastructure" in page.text
    # the same figures and words as on each department's own tile
    for code, state in rows:
        dept = code.split(".")[0]
        tile = _tile((await client.get("/dashboard", params={"department": dept})).text, code)
        assert f'data-state="{state}"' in tile
        if state != "no_report":
            assert f'class="val">{_cell(page.text, code, "value")}<' in tile
            assert f"{_cell(page.text, code, 'period')}" in tile
        else:
            assert _cell(page.text, code, "value").startswith("\u2013") and 'class="val">\u2013<' in tile
        target_words = _cell(page.text, code, "target")
        if target_words == "\u2013":
            assert "\u00b7 target" not in tile and "\u00b7 ref" not in tile, code
        elif target_words.endswith(" (reference)"):
            assert f"\u00b7 ref {target_words.removesuffix(' (reference)')}" in tile, code
        else:
            assert f"\u00b7 target {target_words}" in tile, code
        ytd = _cell(page.text, code, "ytd")
        if ytd != "\u2013":
            fy, value = ytd.split(": ")
            last = _cell(page.text, code, "last-year")
            assert f"{fy} to date {value} (" + (f"last year {last})" if last != "none on record"
                                                else "none on record last year)") in tile
        assert f'class="trend">{_cell(page.text, code, "trend")}<' in tile
    # the decoys that end alike are other measures
    assert "STREETS.agent.vacancy" not in page.text and "WATER.potholes" not in page.text
    # the chooser is a GET form: the chosen measure is in the URL and selected
    assert 'method="get" action="/dashboard/compare"' in page.text and 'value="vacancy" selected' in page.text
    assert "agent.vacancy" not in page.text  # one department reports it: not offered for comparison


async def test_a_red_row_names_who_holds_its_ticket(client, app):
    await _vacancies(client, app)
    red_id = (await client.get("/indicators/STREETS.vacancy")).json()["id"]
    await Feed(app).deliver(snap("t-vac", red_id, version=2, holder="Dana Whitfield", level=1,
                                 role="department_head", action="Hiring freeze lifted"))
    page = (await client.get("/dashboard/compare", params={"measure": "vacancy"})).text
    who = _cell(page, "STREETS.vacancy", "who")
    assert "Dana Whitfield" in who and "level 1" in who and "Hiring freeze lifted" in who
    assert _cell(page, "POLICE.vacancy", "who") == "no open ticket"
    assert _cell(page, "PARKS.vacancy", "who") == ""


async def test_the_drill_down_links_to_the_comparison_where_others_report_it(client, app):
    await _vacancies(client, app)
    shared = (await client.get("/dashboard/indicators/WATER.vacancy")).text
    assert '<a href="/dashboard/compare?measure=vacancy" id="compare-link">Compare across departments</a>' in shared
    alone = (await client.get("/dashboard/indicators/STREETS.agent.vacancy")).text
    assert "Compare across departments" not in alone


async def test_311_figures_compare_by_their_metric(client, app):
    ctx = app.state.ctx
    async with ctx.uow() as uow:
        for dept in ("STREETS", "WATER"):
            await derived311.ensure_indicators(uow, deps_of(ctx.settings), dept=dept, service=None)
        await derived311.ensure_indicators(uow, deps_of(ctx.settings), dept="STREETS", service="POTHOLE", service_name="Pothole repair")
        await uow.commit()
    page = await client.get("/dashboard/compare", params={"measure": "311.opened"})
    assert page.status_code == 200
    assert sorted(c for c, _ in _rows(page.text)) == ["311.STREETS.opened", "311.WATER.opened"]
    assert 'value="311.opened" selected' in page.text
    # a service only one department has: its own page, one row, not offered in the chooser
    one = await client.get("/dashboard/compare", params={"measure": "311.POTHOLE.opened"})
    assert [c for c, _ in _rows(one.text)] == ["311.STREETS.POTHOLE.opened"]
    assert 'value="311.POTHOLE.opened"' not in one.text


async def test_an_unknown_or_empty_measure_is_answered_in_words(client, app):
    await _vacancies(client, app)
    unknown = await client.get("/dashboard/compare", params={"measure": "no_such_measure"})
    assert unknown.status_code == 404 and "No department reports a measure called" in unknown.text
    assert "text/html" in unknown.headers["content-type"] and not _rows(unknown.text)
    for empty in ("", "   "):
        r = await client.get("/dashboard/compare", params={"measure": empty})
        assert r.status_code == 422 and "Choose a measure from the list" in r.text, empty
    long = await client.get("/dashboard/compare", params={"measure": "x" * 500})
    assert long.status_code == 422 and "longer than any measure" in long.text
    # a department's whole code is not a measure of the others
    assert (await client.get("/dashboard/compare", params={"measure": "STREETS.vacancy"})).status_code == 404
    chooser = await client.get("/dashboard/compare")
    assert chooser.status_code == 200 and 'value="vacancy"' in chooser.text and not _rows(chooser.text)
    assert "Vacancy rate (6 departments)" in chooser.text
