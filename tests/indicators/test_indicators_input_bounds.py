"""Issue 16, inputs at the edges: every date, period and duration the indicators API takes has a
plausible range and a clear 422 naming the field (never a 500, never stored as data)."""

from datetime import UTC, datetime, timedelta

import pytest
from ind_helpers import W, create, month, observe

from indicators.periods import fiscal_year

IMPLAUSIBLE = ["0001-01", "1900-01", "FY1900", "1969-12-31", "2100-01", "9999-12", "FY9999", "9999-W52"]


def _field(r) -> str:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    return r.json()["errors"][0]["field"]


def _fy_now() -> int:
    return fiscal_year(datetime.now(UTC).date(), 7)


@pytest.mark.parametrize("period", IMPLAUSIBLE)
async def test_reads_refuse_an_implausible_period(client, period):
    await create(client)
    await observe(client, "STREETS.potholes", month(1), 80)
    assert _field(await client.get("/indicators/STREETS.potholes/summary", params={"period": period})) == "period"
    assert _field(await client.get("/indicators/STREETS.potholes/observations", params={"from": period})) == "from"
    assert _field(await client.get("/indicators/STREETS.potholes/observations", params={"to": period})) == "to"
    assert _field(await client.get(f"/indicators/STREETS.potholes/observations/{period}/revisions")) == "period"


@pytest.mark.parametrize("period", [*IMPLAUSIBLE, month(-1)])
async def test_an_observation_needs_a_plausible_period_that_has_started(client, period):
    await create(client)
    r = await client.post("/indicators/STREETS.potholes/observations", json={"period": period, "value": 5}, headers=W)
    assert _field(r) == "period"
    assert (await client.get("/indicators/STREETS.potholes/observations")).json() == []


@pytest.mark.parametrize("period", ["0001-01", "1900-01", month(-1)])
async def test_bulk_json_and_csv_refuse_an_implausible_period_per_row(client, period):
    await create(client)
    rows = [{"indicator_code": "STREETS.potholes", "period": month(1), "value": 5},
            {"indicator_code": "STREETS.potholes", "period": period, "value": 5}]
    r = await client.post("/observations/bulk", json=rows, headers=W)
    assert r.status_code == 422 and r.json()["errors"] == [
        {"row": 2, "field": "period", "message": r.json()["errors"][0]["message"]}], r.text
    csv = f"indicator_code,period,value\nSTREETS.potholes,{month(1)},5\nSTREETS.potholes,{period},5\n"
    r = await client.post("/observations/bulk", content=csv, headers={**W, "content-type": "text/csv"})
    assert r.status_code == 422 and [(e["row"], e["field"]) for e in r.json()["errors"]] == [(2, "period")], r.text
    assert (await client.get("/indicators/STREETS.potholes/observations")).json() == []


@pytest.mark.parametrize(
    "target,field",
    [
        ({"period": "0001-01"}, "targets.0.period"),
        ({"period": "2999-01"}, "targets.0.period"),
        ({"period": "2000-01"}, "targets.0.period"),
        ({"fiscal_year": 1900}, "targets.0.fiscal_year"),
        ({"fiscal_year": 2999}, "targets.0.fiscal_year"),
        ({"fiscal_year": "later"}, "targets.0.fiscal_year"),
        ("far back", "targets.0.fiscal_year"),
        ("far ahead", "targets.0.fiscal_year"),
    ],
)
async def test_targets_lie_within_a_few_fiscal_years_of_now(client, target, field):
    await create(client)
    if target == "far back":
        target = {"fiscal_year": _fy_now() - 6}
    elif target == "far ahead":
        target = {"fiscal_year": _fy_now() + 4}
    r = await client.put("/indicators/STREETS.potholes/targets", json={"targets": [{**target, "value": 80}]},
                         headers=W)
    assert _field(r) == field
    assert (await client.get("/indicators/STREETS.potholes/targets")).json() == []


@pytest.mark.parametrize("years", [-5, 0, 3])
async def test_targets_within_the_horizon_are_taken(client, years):
    await create(client)
    r = await client.put("/indicators/STREETS.potholes/targets",
                         json={"targets": [{"fiscal_year": _fy_now() + years, "value": 80}]}, headers=W)
    assert r.status_code == 200, r.text


def _soon(**kw) -> str:
    return (datetime.now(UTC) + timedelta(**kw)).isoformat()


@pytest.mark.parametrize(
    "expires_at",
    ["2999-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00", "2000-01-01T00:00:00Z",
     "2026-13-01T00:00:00Z", "2030-01-01T00:00:00", "tomorrow", "__past", "__two_years"],
)
async def test_override_expiry_is_in_the_future_and_within_about_a_year(client, expires_at):
    await create(client)
    expires_at = {"__past": _soon(minutes=-1), "__two_years": _soon(days=400)}.get(expires_at, expires_at)
    r = await client.put("/indicators/STREETS.potholes/override", headers=W, json={
        "status": "yellow", "reason": "staff judgement", "expires_at": expires_at})
    assert _field(r) == "expires_at"
    assert (await client.get("/indicators/STREETS.potholes/overrides")).json() == []


async def test_override_expiry_within_a_year_is_taken(client):
    await create(client)
    r = await client.put("/indicators/STREETS.potholes/override", headers=W, json={
        "status": "yellow", "reason": "staff judgement", "expires_at": _soon(days=360)})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("body,field", [
    ({"grace_days": 10_000}, "grace_days"), ({"grace_days": -1}, "grace_days"),
    ({"persistence": 0}, "persistence"), ({"history_window": 100_000}, "history_window"),
])
async def test_durations_of_an_indicator_are_bounded(client, body, field):
    from ind_helpers import indicator

    assert _field(await client.post("/indicators", json=indicator(**body), headers=W)) == field
    await create(client)
    assert _field(await client.patch("/indicators/STREETS.potholes", json=body, headers=W)) == field


NON_FINITE = ["Infinity", "-Infinity", "NaN", "inf", "nan"]


@pytest.mark.parametrize("number", NON_FINITE)
async def test_non_finite_numbers_are_refused_everywhere(client, number):
    """A number that is not finite is not a setting, a target or a measurement: 422 naming the
    field, and nothing stored (it once came back as null, breaking the response's own shape)."""
    await create(client)
    before = (await client.get("/indicators/STREETS.potholes")).json()
    for field in ("recovery_within", "band_tolerance", "history_k"):
        assert _field(await client.patch("/indicators/STREETS.potholes", json={field: number}, headers=W)) == field
    rules = [{"status": "green", "max_miss": number}, {"status": "red"}]
    assert _field(await client.patch("/indicators/STREETS.potholes", json={"rules": rules}, headers=W)).startswith(
        "rules")
    assert (await client.get("/indicators/STREETS.potholes")).json()["recovery_within"] == before["recovery_within"]
    from ind_helpers import indicator

    assert _field(await client.post("/indicators", json=indicator(code="X.y", recovery_within=number),
                                    headers=W)) == "recovery_within"
    r = await client.post("/indicators/STREETS.potholes/observations", json={"period": month(1), "value": number},
                          headers=W)
    assert _field(r) == "value"
    r = await client.put("/indicators/STREETS.potholes/targets", headers=W,
                         json={"targets": [{"fiscal_year": _fy_now(), "value": number}]})
    assert _field(r) == "targets.0.value"
    assert (await client.get("/indicators/STREETS.potholes/observations")).json() == []


async def test_bare_json_infinity_is_refused(client):
    """Python's JSON reader takes a bare Infinity literal; the API must not."""
    await create(client)
    r = await client.patch("/indicators/STREETS.potholes", content=b'{"recovery_within": Infinity}',
                           headers={**W, "content-type": "application/json"})
    assert r.status_code == 422, r.text
