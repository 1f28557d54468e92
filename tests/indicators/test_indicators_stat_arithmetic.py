"""Issue 16, stat arithmetic a city would publish wrongly: what is summed, what a formula's year to
date is, which target governs a period, and references that must exist."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from ind_helpers import W, create, fy_now, indicator, observe, outbox_events

from indicators.targets import Book, TargetRow


def _last_fy_months(*months: int) -> list[str]:
    """Months of the last complete fiscal year (July start): always in the past, one fiscal year."""
    fy = fy_now() - 1
    return [f"{fy if m < 7 else fy - 1}-{m:02d}" for m in months]


APR, MAY, JUN = _last_fy_months(4, 5, 6)


def _err(r, field):
    assert r.status_code == 422, r.text
    assert any(e["field"] == field for e in r.json()["errors"]), r.json()


# --- what is summed ----------------------------------------------------------------------


@pytest.mark.parametrize("unit,additive", [("percentage", False), ("score", False), ("duration", False),
                                           ("count", True), ("currency", True)])
async def test_the_unit_decides_the_default_aggregation(client, unit, additive):
    body = indicator(unit=unit)
    body.pop("additive", None)
    r = await client.post("/indicators", json=body, headers=W)
    assert r.status_code == 201 and r.json()["additive"] is additive, r.text


@pytest.mark.parametrize("unit", ["percentage", "score"])
async def test_a_rate_or_an_average_is_never_summed(client, unit):
    _err(await client.post("/indicators", json=indicator(unit=unit, additive=True), headers=W), "additive")
    await create(client, unit=unit)
    _err(await client.patch("/indicators/STREETS.potholes", json={"additive": True}, headers=W), "additive")


async def test_hours_of_work_may_be_summed_and_a_backlog_need_not_be(client):
    r = await client.post("/indicators", json=indicator(code="X.hours", unit="duration", additive=True), headers=W)
    assert r.status_code == 201 and r.json()["additive"] is True
    r = await client.post("/indicators", json=indicator(code="X.backlog", unit="count", additive=False), headers=W)
    assert r.status_code == 201 and r.json()["additive"] is False


async def test_a_percentage_year_to_date_is_a_mean_not_a_sum(client):
    await create(client)  # a percentage, created without `additive`
    for m, v in zip((APR, MAY, JUN), (90, 80, 100), strict=True):
        await observe(client, "STREETS.potholes", m, v)
    s = (await client.get("/indicators/STREETS.potholes/summary", params={"period": JUN})).json()
    assert s["ytd_method"] == "mean" and s["ytd_value"] == pytest.approx(90) and s["ytd_periods"] == 3


# --- formulas ----------------------------------------------------------------------------


async def _cost_per_ton(client):
    await create(client, code="SAN.spending", unit="currency", kind="input", direction="down")
    await create(client, code="SAN.tons", unit="count", kind="output")
    return await create(client, code="SAN.cost_per_ton", unit="currency", kind="efficiency", direction="down",
                        formula={"numerator": "SAN.spending", "denominator": "SAN.tons"})


async def test_a_formula_year_to_date_is_the_formula_of_its_inputs_year_to_date(client):
    ind = await _cost_per_ton(client)
    assert ind["additive"] is False
    r = await client.put("/indicators/SAN.cost_per_ton/targets", headers=W,
                         json={"targets": [{"fiscal_year": fy_now() - 1, "value": 20}]})
    assert r.status_code == 200, r.text
    for m, spend, tons in ((APR, 100, 10), (MAY, 300, 2), (JUN, 150, 5)):
        await observe(client, "SAN.spending", m, spend)
        await observe(client, "SAN.tons", m, tons)
    s = (await client.get("/indicators/SAN.cost_per_ton/summary", params={"period": JUN})).json()
    assert s["value"] == pytest.approx(30)
    # total spending over total tons (550 / 17), not the mean of the monthly ratios (63.33)
    assert s["ytd_method"] == "formula" and s["ytd_value"] == pytest.approx(550 / 17) and s["ytd_periods"] == 3
    assert s["ytd_target"] == pytest.approx(20)


async def test_an_additive_formula_is_refused(client):
    await _cost_per_ton(client)
    body = indicator(code="SAN.other", unit="currency", additive=True,
                     formula={"numerator": "SAN.spending", "denominator": "SAN.tons"})
    _err(await client.post("/indicators", json=body, headers=W), "additive")


@pytest.mark.parametrize("role", ["numerator", "denominator"])
async def test_a_formula_that_uses_itself_is_refused(client, role):
    await create(client, code="SAN.tons", unit="count", kind="output")
    formula = {"numerator": "SAN.tons", "denominator": "SAN.tons", role: "SAN.loop"}
    r = await client.post("/indicators", json=indicator(code="SAN.loop", unit="count", formula=formula), headers=W)
    _err(r, f"formula.{role}")
    assert "itself" in r.text


def test_a_cycle_through_other_formulas_is_found():
    from indicators.aggregation import formula_cycle

    uses = {"A": ["B", "X"], "B": ["C"], "C": ["A"], "X": []}
    assert formula_cycle("A", ["B", "X"], uses.get) == ["A", "B", "C", "A"]
    assert formula_cycle("D", ["B"], uses.get) is None  # a loop elsewhere is not D's
    assert formula_cycle("D", ["X"], uses.get) is None


# --- targets -----------------------------------------------------------------------------


async def _put(client, *targets):
    r = await client.put("/indicators/STREETS.potholes/targets", json={"targets": list(targets)}, headers=W)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_period_target_applies_to_that_period_only(client):
    await create(client)
    fy = fy_now() - 1
    await _put(client, {"fiscal_year": fy, "value": 80}, {"period": APR, "value": 90})
    for m in (APR, MAY, JUN):
        await observe(client, "STREETS.potholes", m, 85)
    series = {s["period"]: (s["target"], s["status"]) for s in
              (await client.get("/indicators/STREETS.potholes/observations")).json()}
    assert series == {APR: (90, "yellow"), MAY: (80, "green"), JUN: (80, "green")}
    periods = {p["period"]: p for p in (await client.get("/indicators/STREETS.potholes/targets/periods",
                                                        params={"from": APR, "to": JUN})).json()}
    assert periods[APR]["target"] == 90 and periods[APR]["applies"] == "period"
    assert periods[MAY]["target"] == 80 and periods[MAY]["applies"] == "fiscal_year"
    assert f"FY{fy}" in periods[MAY]["why"] and APR in periods[APR]["why"]


async def test_rest_of_year_and_onward_say_so(client):
    await create(client)
    fy = fy_now() - 1
    listed = await _put(client, {"fiscal_year": fy, "value": 80}, {"period": MAY, "value": 70, "applies": "rest_of_year"},
                        {"period": f"{fy - 1}-07", "value": 60, "applies": "onward"})
    assert {(t["period"], t["applies"]) for t in listed} == {(f"FY{fy}", "fiscal_year"), (MAY, "rest_of_year"),
                                                             (f"{fy - 1}-07", "onward")}
    periods = {p["period"]: p for p in (await client.get(
        "/indicators/STREETS.potholes/targets/periods", params={"from": APR, "to": f"{fy}-08"})).json()}
    assert [periods[m]["target"] for m in (APR, MAY, JUN, f"{fy}-07", f"{fy}-08")] == [80, 70, 70, 60, 60]
    assert periods[JUN]["applies"] == "rest_of_year" and periods[f"{fy}-07"]["applies"] == "onward"
    assert "carried forward" in periods[f"{fy}-07"]["why"]


async def test_without_a_target_a_period_says_none_governs(client):
    await create(client)
    periods = (await client.get("/indicators/STREETS.potholes/targets/periods", params={"from": APR, "to": JUN})).json()
    assert [p["target"] for p in periods] == [None, None, None] and "no target" in periods[0]["why"]


@pytest.mark.parametrize("target", [{"fiscal_year": 2026, "applies": "period"},
                                    {"fiscal_year": 2026, "applies": "rest_of_year"},
                                    {"period": "2026-01", "applies": "fiscal_year"},
                                    {"period": "2026-01", "applies": "sometimes"}])
async def test_an_applies_that_does_not_fit_is_refused(client, target):
    await create(client)
    _err(await client.put("/indicators/STREETS.potholes/targets", json={"targets": [{**target, "value": 1}]},
                          headers=W), "targets.0.applies")


def test_the_governing_order():
    from datetime import date

    rows = [TargetRow(date(2026, 7, 1), "fiscal_year", 80, "FY2027"), TargetRow(date(2026, 9, 1), "period", 90, "2026-09"),
            TargetRow(date(2026, 11, 1), "rest_of_year", 70, "2026-11"), TargetRow(date(2020, 1, 1), "onward", 50, "2020-01")]
    book = Book(rows, fy0=7)
    got = {d: book.value_at(d) for d in (date(2026, 8, 1), date(2026, 9, 1), date(2026, 10, 1), date(2027, 6, 1),
                                         date(2027, 7, 1), date(2026, 6, 1), date(2019, 12, 1))}
    assert got == {date(2026, 8, 1): 80, date(2026, 9, 1): 90, date(2026, 10, 1): 80, date(2027, 6, 1): 70,
                   date(2027, 7, 1): 50, date(2026, 6, 1): 50, date(2019, 12, 1): None}


# --- references ----------------------------------------------------------------------------


async def test_linked_outcome_must_be_a_known_active_indicator(client):
    _err(await client.post("/indicators", json=indicator(code="X.spend", linked_outcome_code="NOPE.x"), headers=W),
         "linked_outcome_code")
    _err(await client.post("/indicators", json=indicator(code="X.spend", linked_outcome_code="X.spend"), headers=W),
         "linked_outcome_code")
    await create(client, code="X.outcome")
    await create(client, code="X.spend", linked_outcome_code="X.outcome")
    _err(await client.patch("/indicators/X.spend", json={"linked_outcome_code": "NOPE.x"}, headers=W),
         "linked_outcome_code")
    await client.patch("/indicators/X.outcome", json={"active": False}, headers=W)
    _err(await client.post("/indicators", json=indicator(code="X.spend2", linked_outcome_code="X.outcome"), headers=W),
         "linked_outcome_code")
    r = await client.patch("/indicators/X.spend", json={"linked_outcome_code": None}, headers=W)
    assert r.status_code == 200 and r.json()["linked_outcome_code"] is None


async def test_a_formula_input_must_be_active(client):
    await create(client, code="SAN.spending", unit="currency")
    await create(client, code="SAN.tons", unit="count")
    await client.patch("/indicators/SAN.tons", json={"active": False}, headers=W)
    _err(await client.post("/indicators", json=indicator(code="SAN.cpt", unit="currency", formula={
        "numerator": "SAN.spending", "denominator": "SAN.tons"}), headers=W), "formula.denominator")


async def test_no_override_on_an_inactive_indicator(client, app):
    ind = await create(client)
    await client.patch("/indicators/STREETS.potholes", json={"active": False}, headers=W)
    before = len(await outbox_events(app, ind["id"]))
    r = await client.put("/indicators/STREETS.potholes/override", headers=W, json={
        "status": "red", "reason": "staff judgement", "expires_at": (datetime.now(UTC) + timedelta(days=3)).isoformat()})
    _err(r, "code")
    assert "inactive" in r.text
    assert len(await outbox_events(app, ind["id"])) == before
    assert (await client.get("/indicators/STREETS.potholes/overrides")).json() == []


async def test_existing_targets_migrate_as_onward(db_kind, tmp_path):
    """Before `applies`, every target carried forward: stored rows keep that meaning, now explicit."""
    from citystat_common.db import create_engine
    from citystat_common.migrate import upgrade
    from citystat_common.testing import empty_database

    url = empty_database(db_kind, tmp_path)
    upgrade("indicators", url, "0004")
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(
                "INSERT INTO indicators (id, code, name, department_code, unit, kind, direction, frequency, additive,"
                " critical, function_tag, basis, band_tolerance, active, status, missing, created_at, updated_at)"
                " VALUES ('i1', 'X.p', 'X', 'STREETS', 'percentage', 'quality', 'up', 'monthly', true, false,"
                " 'performance', 'target', 0.05, true, 'grey', false, '2026-01-01 00:00:00+00:00',"
                " '2026-01-01 00:00:00+00:00')"))
            await conn.execute(sa.text(
                "INSERT INTO targets (indicator_id, period_start, period_label, fiscal_year, value, set_by, set_at)"
                " VALUES ('i1', '2024-01-01', '2024-01', 2024, 80, 'x', '2026-01-01 00:00:00+00:00')"))
        upgrade("indicators", url)
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT applies FROM targets"))).scalars().all() == ["onward"]
            # a percentage was additive by default: no longer
            assert (await conn.execute(sa.text("SELECT additive FROM indicators"))).scalars().all() in ([False], [0])
    finally:
        await engine.dispose()
