"""Issue 22, the city's own report: a department's chapter in the Mayor's Management Report layout
(services and goals, actuals of whole fiscal years, target, prior year to date, year to date, desired
direction, a star for critical), its CSV in the MMR open dataset's layout, and the department's
narrative of each report month, written through the API by its own staff (or an administrator),
with every earlier version kept and the writer's name on each."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from ind_helpers import CITY, W, create, fy_now, preload_departments

from citystat_common.testing import TEST_KEY_ENTRIES, app_client, auth
from indicators.dashboard_tiles import fmt
from indicators.main import create_app

STREETS_STAFF = {"X-API-Key": "test-key-streets-staff"}
WATER_STAFF = {"X-API-Key": "test-key-water-staff"}
ADMIN = auth("admin")
KEYS = [*TEST_KEY_ENTRIES,
        {"name": "streets staff", "key": "test-key-streets-staff", "scopes": ["staff"], "departments": ["STREETS"]},
        {"name": "water staff", "key": "test-key-water-staff", "scopes": ["staff", "indicators:write"],
         "departments": ["WATER"]}]


@pytest.fixture
async def rc(indicators_settings):
    """A client whose keys include staff limited to one department each."""
    app = create_app(indicators_settings.model_copy(update={"api_keys": KEYS}))
    async with app_client(app) as c:
        await preload_departments(app)
        yield c


def this_month() -> str:
    today = datetime.now(UTC).astimezone(CITY).date()
    return f"{today.year}-{today.month:02d}"


def fy_month_labels(fy: int) -> list[str]:
    """The twelve months of fiscal year ``fy`` (July start), in order."""
    return [f"{fy - 1 if m >= 7 else fy}-{m:02d}" for m in (7, 8, 9, 10, 11, 12, 1, 2, 3, 4, 5, 6)]


def cells(html: str, code: str) -> list[str]:
    """The text of each cell of the report row of indicator ``code``."""
    m = re.search(rf'<tr data-code="{re.escape(code)}">(.*?)</tr>', html, re.S)
    assert m, f"no report row for {code}"
    return [unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", m.group(1), re.S)]


async def _bulk(c, rows):
    r = await c.post("/observations/bulk", json=rows, headers=W)
    assert r.status_code == 200, r.text


async def _department_with_history(c):
    """Counts over two whole fiscal years and this one to date; a formula over them; a percentage."""
    fy = fy_now()
    await create(c, code="SAN.tons", name="Refuse collected (tons)", unit="count", kind="output", critical=True)
    await create(c, code="SAN.spending", name="Collection spending", unit="currency", kind="input",
                 direction="down", critical=False)
    await create(c, code="SAN.cost_per_ton", name="Cost per ton collected", unit="currency", kind="efficiency",
                 direction="down", critical=False, formula={"numerator": "SAN.spending", "denominator": "SAN.tons"})
    await create(c, code="STREETS.potholes")  # a percentage, critical
    await create(c, code="POLICE.crime", name="Major felony crimes", unit="count", kind="outcome",
                 direction="down", department_code="POLICE", critical=False)
    now = this_month()
    months = [m for y in (fy - 2, fy - 1, fy) for m in fy_month_labels(y) if m <= now]
    tons = {m: 10 + (k * 7) % 13 for k, m in enumerate(months)}
    spend = {m: 100 + (k * 31) % 57 for k, m in enumerate(months)}
    pct = {m: 60 + (k * 3) % 30 for k, m in enumerate(months)}
    rows = [{"indicator_code": code, "period": m, "value": v} for code, series in (
        ("SAN.tons", tons), ("SAN.spending", spend), ("STREETS.potholes", pct), ("POLICE.crime", tons))
        for m, v in series.items()]
    await _bulk(c, rows)
    r = await c.put("/indicators/SAN.tons/targets", json={"targets": [{"fiscal_year": fy, "value": 12}]}, headers=W)
    assert r.status_code == 200, r.text
    r = await c.put("/indicators/STREETS.potholes/targets", json={"targets": [{"fiscal_year": fy, "value": 85}]},
                    headers=W)
    assert r.status_code == 200, r.text
    return fy, now, tons, spend, pct


def _in_year(series, fy):
    return [v for m, v in series.items() if m in fy_month_labels(fy)]


async def test_the_chapter_shows_whole_years_and_the_year_to_date(rc):
    fy, now, tons, spend, pct = await _department_with_history(rc)
    ytd_months = [m for m in fy_month_labels(fy) if m <= now]
    prior_months = [fy_month_labels(fy - 1)[fy_month_labels(fy).index(m)] for m in ytd_months]
    statement = {"what_we_do": "We keep the streets clean and safe.\n\nWe collect the refuse of every household.",
                 "services": [{"service": "Collect refuse", "goals": [
                     {"goal": "Collect every household's refuse at the lowest cost",
                      "indicators": ["SAN.cost_per_ton", "SAN.tons"]}]},
                              {"service": "Repair streets", "goals": [
                                  {"goal": "Repair potholes promptly", "indicators": ["STREETS.potholes"]},
                                  {"goal": "Keep sidewalks safe", "indicators": []}]}]}
    r = await rc.put("/departments/STREETS/statement", json=statement, headers=STREETS_STAFF)
    assert r.status_code == 200, r.text
    assert r.json()["written_by"] == "key streets staff"

    page = await rc.get("/dashboard/departments/STREETS/report", params={"period": now})
    assert page.status_code == 200
    html = page.text
    head = re.search(r"<thead>(.*?)</thead>", html, re.S).group(1)
    words = [unescape(re.sub(r"<[^>]+>", "", x)).strip() for x in re.findall(r"<th[^>]*>(.*?)</th>", head, re.S)]
    y2 = lambda y: f"FY{y % 100:02d}"  # noqa: E731
    assert words == ["Performance indicator", "Actual", f"Target {y2(fy)}",
                     f"Fiscal year to date ({len(ytd_months)} month{'s' if len(ytd_months) != 1 else ''})",
                     "Desired direction", "Trend", "Status", y2(fy - 3), y2(fy - 2), y2(fy - 1), y2(fy - 1), y2(fy)]

    # a count adds up over the year; a formula is the year's numerator over the year's denominator
    t = cells(html, "SAN.tons")
    assert t[0].startswith("Refuse collected (tons)") and "critical indicator" in t[0]
    assert t[1] == "\u2013"  # no figures three years back
    assert t[2:4] == [fmt(sum(_in_year(tons, y)), "count") for y in (fy - 2, fy - 1)]
    assert t[4] == fmt(12 * 12, "count")  # twelve monthly targets of 12
    assert t[5] == fmt(sum(tons[m] for m in prior_months), "count")
    assert t[6] == fmt(sum(tons[m] for m in ytd_months), "count")
    assert t[7].endswith("Up")
    c = cells(html, "SAN.cost_per_ton")
    assert "critical" not in c[0]
    for col, y in ((2, fy - 2), (3, fy - 1)):
        assert c[col] == fmt(sum(_in_year(spend, y)) / sum(_in_year(tons, y)), "currency"), (col, c)
    assert c[6] == fmt(sum(spend[m] for m in ytd_months) / sum(tons[m] for m in ytd_months), "currency")
    assert c[5] == fmt(sum(spend[m] for m in prior_months) / sum(tons[m] for m in prior_months), "currency")
    assert c[7].endswith("Down")
    # a percentage is averaged, never summed
    p = cells(html, "STREETS.potholes")
    assert p[3] == fmt(sum(_in_year(pct, fy - 1)) / 12, "percentage") and p[4] == fmt(85, "percentage")

    # grouped by service and goal, in the statement's order; the other indicators after them
    order = [m.group(1) for m in re.finditer(r'<tr (?:class="(?:service|goal)"><th[^>]*>([^<]+)</th>|'
                                              r'data-code="([^"]+)")', html) if m.group(1)] 
    assert order[:5] == ["Collect refuse", "Goal: Collect every household&#x27;s refuse at the lowest cost",
                         "Repair streets", "Goal: Repair potholes promptly", "Goal: Keep sidewalks safe"]
    rows = re.findall(r'data-code="([^"]+)"><th', html)
    assert rows[:3] == ["SAN.cost_per_ton", "SAN.tons", "STREETS.potholes"] and "SAN.spending" in rows[3:]
    assert "POLICE.crime" not in rows
    assert "We collect the refuse of every household." in html and "No indicator answers this goal yet" in html

    # the CSV: the MMR open dataset's layout, one row per indicator and fiscal year
    got = list(csv.reader(io.StringIO((await rc.get("/dashboard/departments/STREETS/report.csv",
                                                    params={"period": now})).text)))
    assert got[0] == ["agency", "agency_code", "service", "goal", "indicator", "indicator_code", "critical",
                      "desired_direction", "measurement_type", "frequency", "fiscal_year", "accepted_value",
                      "accepted_value_ytd", "ytd_through", "ytd_periods", "target", "report_period"]
    table = {(r[5], int(r[10])): dict(zip(got[0], r, strict=True)) for r in got[1:]}
    assert {code for code, _ in table} == {"SAN.tons", "SAN.spending", "SAN.cost_per_ton", "STREETS.potholes"}
    last = table[("SAN.tons", fy - 1)]
    assert (last["agency"], last["service"], last["goal"], last["critical"], last["desired_direction"],
            last["measurement_type"]) == ("Streets Department", "Collect refuse",
                                          "Collect every household's refuse at the lowest cost", "Y", "Up", "Number")
    assert float(last["accepted_value"]) == sum(_in_year(tons, fy - 1))
    assert float(last["accepted_value_ytd"]) == sum(tons[m] for m in prior_months)
    current = table[("SAN.tons", fy)]
    assert current["accepted_value"] == "" or now.endswith("-06")  # the year has not ended
    assert float(current["accepted_value_ytd"]) == sum(tons[m] for m in ytd_months)
    assert (current["target"], current["ytd_periods"], current["report_period"]) == ("144", str(len(ytd_months)), now)
    ratio_row = table[("SAN.cost_per_ton", fy - 2)]
    assert ratio_row["measurement_type"] == "Ratio"
    assert float(ratio_row["accepted_value"]) == pytest.approx(
        sum(_in_year(spend, fy - 2)) / sum(_in_year(tons, fy - 2)), abs=1e-6)
    assert table[("SAN.spending", fy)]["service"] == "Other indicators"
    assert (fy - 3) in {y for _, y in table} and table[("SAN.tons", fy - 3)]["accepted_value"] == ""
    city = list(csv.DictReader(io.StringIO((await rc.get("/dashboard/report.csv", params={"period": now})).text)))
    assert {r["indicator_code"] for r in city} >= {"SAN.tons", "POLICE.crime"}
    crime = [r for r in city if r["indicator_code"] == "POLICE.crime" and r["fiscal_year"] == str(fy - 1)]
    assert crime[0]["agency"] == "Police Department" and crime[0]["desired_direction"] == "Down"


async def test_a_departments_narrative_is_kept_with_its_writer(rc):
    await create(rc, code="STREETS.potholes")
    await create(rc, code="WATER.breaks", department_code="WATER")
    now = this_month()
    r = await rc.post("/departments/STREETS/narratives", json={"period": now, "text": "Crews fixed the backlog."},
                      headers=STREETS_STAFF)
    assert r.status_code == 201, r.text
    first = r.json()
    assert (first["written_by"], first["current"], first["period"]) == ("key streets staff", True, now)
    r = await rc.put(f"/departments/streets/narratives/{now}", headers=ADMIN,
                     json={"text": "Crews fixed the backlog.\n\nThe storm slowed repairs in the second week."})
    assert r.status_code == 200 and r.json()["written_by"] == "key admin", r.text
    history = (await rc.get("/departments/STREETS/narratives", params={"period": now})).json()
    assert history["total"] == 2
    assert [(h["written_by"], h["current"]) for h in history["items"]] == [("key admin", True),
                                                                          ("key streets staff", False)]
    assert history["items"][1]["text"] == "Crews fixed the backlog." and history["items"][1]["superseded_at"]
    html = (await rc.get("/dashboard/departments/STREETS/report", params={"period": now})).text
    narrative = re.search(r'<section aria-labelledby="narrative-h" id="narrative">(.*?)</section>', html, re.S).group(1)
    assert "<p>The storm slowed repairs in the second week.</p>" in narrative
    assert "Written by key admin" in narrative and "1 earlier version kept" in narrative
    # another month shows its own (none yet), and the department's other words stay its own
    y, m = int(now[:4]), int(now[5:])
    before = f"{y if m > 1 else y - 1}-{m - 1 if m > 1 else 12:02d}"
    earlier = (await rc.get("/dashboard/departments/STREETS/report", params={"period": before})).text
    assert "has not written its account" in earlier and "storm" not in earlier
    assert "storm" not in (await rc.get("/dashboard/departments/WATER/report", params={"period": now})).text


async def test_only_the_departments_staff_or_an_administrator_write_it(rc):
    await create(rc, code="STREETS.potholes")
    body = {"period": this_month(), "text": "Not ours to write."}
    for headers, status, words in ((WATER_STAFF, 403, "only the staff of STREETS"), (W, 403, "only the staff"),
                                   ({}, 401, "X-API-Key"), (auth("public"), 403, "only the staff")):
        r = await rc.post("/departments/STREETS/narratives", json=body, headers=headers)
        assert r.status_code == status and words in r.text, (headers, r.text)
        r = await rc.put("/departments/STREETS/statement", json={"what_we_do": "x"}, headers=headers)
        assert r.status_code == status, (headers, r.text)
    assert (await rc.get("/departments/STREETS/narratives")).json()["total"] == 0
    assert (await rc.get("/departments/STREETS/statement")).status_code == 404


async def test_bad_input_is_refused_in_words(rc):
    await create(rc, code="STREETS.potholes")
    await create(rc, code="WATER.breaks", department_code="WATER")
    now = this_month()
    y = int(now[:4])
    bad = [({"period": now, "text": "   "}, "text"), ({"period": "2026-13", "text": "x"}, "period"),
           ({"period": f"{y + 1}-01", "text": "x"}, "period"), ({"period": f"{y - 9}-01", "text": "x"}, "period"),
           ({"period": now}, "text"), ({"period": now, "text": "x", "author": "me"}, "author"),
           ({"period": now, "text": "x" * 20_001}, "text")]
    for body, field in bad:
        r = await rc.post("/departments/STREETS/narratives", json=body, headers=STREETS_STAFF)
        assert r.status_code == 422, (body, r.text)
        assert field in r.text, (body, r.text)
    r = await rc.put("/departments/STREETS/narratives/last-month", json={"text": "x"}, headers=STREETS_STAFF)
    assert r.status_code == 422, r.text
    r = await rc.post("/departments/NOWHERE/narratives", json={"period": now, "text": "x"}, headers=ADMIN)
    assert r.status_code == 404, r.text
    assert (await rc.get("/dashboard/departments/STREETS/report", params={"period": "2026-00"})).status_code == 422
    assert (await rc.get("/dashboard/departments/NOWHERE/report")).status_code == 404
    for services, words in (([{"service": "Repair", "goals": [{"goal": "g", "indicators": ["WATER.breaks"]}]}],
                             "not indicators of STREETS"),
                            ([{"service": "Repair", "goals": [{"goal": "g", "indicators": ["NO.such"]}]}],
                             "not indicators of STREETS"),
                            ([{"service": "A", "goals": [{"goal": "g", "indicators": ["STREETS.potholes"]}]},
                              {"service": "B", "goals": [{"goal": "h", "indicators": ["STREETS.potholes"]}]}],
                             "named twice")):
        r = await rc.put("/departments/STREETS/statement", json={"what_we_do": "We fix streets.",
                                                                 "services": services}, headers=ADMIN)
        assert r.status_code == 422 and words in r.text, r.text
    assert (await rc.get("/departments/STREETS/narratives")).json()["total"] == 0
    # a statement's earlier version is kept too
    for text in ("We fix streets.", "We fix and sweep streets."):
        r = await rc.put("/departments/STREETS/statement", json={"what_we_do": text}, headers=ADMIN)
        assert r.status_code == 200, r.text
    versions = (await rc.get("/departments/STREETS/statements")).json()
    assert [(v["what_we_do"], v["valid_to"] is None) for v in versions["items"]] == [
        ("We fix and sweep streets.", True), ("We fix streets.", False)]


DEVELOPER_WORDS = re.compile(
    r"\bbasis\b|max_miss|status_changed|breached\b(?! )|\bAPI\b|endpoint|/indicators/|/departments/|INDICATORS_|"
    r"settings?\b|\bdocs?\b|\bNone\b|\bnull\b|\btrue\b|\bfalse\b|direction (?:up|down|band)\b|_[a-z]+_", re.I)


def visible_text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return unescape(re.sub(r"<[^>]+>", " ", html))


async def test_no_developer_text_on_the_pages_people_read(rc):
    await _department_with_history(rc)
    r = await rc.put("/indicators/SAN.tons/override", headers=W, json={
        "status": "yellow", "reason": "the landfill closed for a week", "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat()})
    assert r.status_code == 200, r.text
    await rc.post("/departments/STREETS/narratives", headers=ADMIN, json={"period": this_month(), "text": "Steady."})
    pages = ["/dashboard", "/dashboard?view=city", "/dashboard?department=STREETS&services=show",
             "/dashboard/indicators/SAN.tons", "/dashboard/indicators/SAN.cost_per_ton",
             "/dashboard/departments/STREETS/report", "/dashboard/departments/POLICE/report"]
    for path in pages:
        r = await rc.get(path)
        assert r.status_code == 200, path
        found = DEVELOPER_WORDS.findall(visible_text(r.text))
        assert found == [], (path, found)
    drill = visible_text((await rc.get("/dashboard/indicators/SAN.cost_per_ton")).text)
    assert "judged against its target" in drill and "lower is better" in drill


async def test_a_citys_own_lower_case_code_is_looked_up_as_written(indicators_settings):
    """A city's code kept as it has it (issue 20): "dohmh" is written for as dohmh, by its staff
    (whose sign-in groups arrive upper-cased), and "DOHMH" is no department."""
    keys = [*KEYS, {"name": "health staff", "key": "test-key-health-staff", "scopes": ["staff"], "departments": ["DOHMH"]}]
    app = create_app(indicators_settings.model_copy(update={"api_keys": keys}))
    async with app_client(app) as rc:
        await preload_departments(app, [("dohmh", "Health and Mental Hygiene", "HHS", "Health and Human Services")])
        await create(rc, code="dohmh.inspections", department_code="dohmh")
        body = {"period": this_month(), "text": "Inspections kept pace."}
        r = await rc.post("/departments/dohmh/narratives", json=body, headers={"X-API-Key": "test-key-health-staff"})
        assert r.status_code == 201 and r.json()["department_code"] == "dohmh", r.text
        assert (await rc.get("/departments/dohmh/narratives")).json()["total"] == 1
        assert (await rc.get("/departments/DOHMH/narratives")).status_code == 404
