"""Registry, targets, observations, evaluation through the API, overrides, missing data,
formulas, events in the outbox: on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from ind_helpers import (
    W,
    create,
    deps_of,
    feed,
    indicator,
    month,
    month_start,
    observe,
    outbox_events,
    target,
)

from citystat_common.db import utcnow
from citystat_common.testing import app_client, auth
from indicators import service
from indicators.main import create_app


async def test_create_and_read_indicator_with_versioned_description(client):
    ind = await create(client)
    assert ind["status"] == "grey" and ind["rules"][0] == {"status": "green", "max_miss": 0.05}
    r = await client.patch("/indicators/STREETS.potholes", json={"description": "Repaired within 72 hours."}, headers=W)
    assert r.status_code == 200 and r.json()["description"] == "Repaired within 72 hours."
    versions = (await client.get("/indicators/STREETS.potholes/descriptions")).json()
    assert [v["text"] for v in versions] == ["Share of pothole requests repaired within three days.", "Repaired within 72 hours."]
    assert versions[0]["valid_to"] == versions[1]["valid_from"] and versions[1]["valid_to"] is None
    listed = (await client.get("/indicators", params={"department": "STREETS", "critical": True})).json()
    assert listed["total"] == 1


@pytest.mark.parametrize(
    "body,field,status",
    [
        ({"department_code": "NOPE"}, "department_code", 422),
        ({"unit": "furlongs"}, "unit", 422),
        ({"direction": "sideways"}, "direction", 422),
        ({"frequency": "hourly"}, "frequency", 422),
        ({"kind": "vibes"}, "kind", 422),
        ({"function_tag": "astrology"}, "function_tag", 422),
        ({"code": "bad code!"}, "code", 422),
        ({"rules": [{"status": "red", "max_miss": 0.1}, {"status": "green"}]}, "rules", 422),
        ({"formula": {"numerator": "X", "denominator": "Y"}}, "formula.numerator", 422),
    ],
)
async def test_create_validation_names_the_field(client, body, field, status):
    r = await client.post("/indicators", json=indicator(**body), headers=W)
    assert r.status_code == status, r.text
    assert any(e["field"] == field for e in r.json()["errors"]), r.json()


async def test_a_department_missing_locally_is_asked_of_the_directory(indicators_settings):
    """Known there: the indicator is created and the department kept in the local copy; unknown
    there, or the directory unreachable: 422 on department_code, saying which."""
    from citystat_common.directory import DirectoryUnreachable

    asked = []

    class Directory:
        async def get(self, code):
            asked.append(code)
            if code == "DOWN":
                raise DirectoryUnreachable("timed out")
            return {"code": "PARKS", "name": "Parks and Recreation", "active": True} if code == "PARKS" else None

    async with app_client(create_app(indicators_settings, directory=Directory())) as client:
        r = await client.post("/indicators", json=indicator(code="PARKS.trees", department_code="PARKS"), headers=W)
        assert r.status_code == 201, r.text
        assert {d["code"]: d["name"] for d in (await client.get("/departments")).json()}["PARKS"] == "Parks and Recreation"
        for code, says in (("NOPE", "not known to the directory"), ("DOWN", "directory could not be asked")):
            r = await client.post("/indicators", json=indicator(code=f"{code}.x", department_code=code), headers=W)
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "department_code", r.text
            assert says in r.text
        await client.post("/indicators", json=indicator(code="PARKS.benches", department_code="PARKS"), headers=W)
    assert asked == ["PARKS", "NOPE", "DOWN"]  # the local copy answers the second time


async def test_duplicate_code_is_409_and_idempotency_key_replays(client):
    h = {**W, "Idempotency-Key": "ind-1"}
    a = await client.post("/indicators", json=indicator(), headers=h)
    b = await client.post("/indicators", json=indicator(), headers=h)
    assert a.status_code == b.status_code == 201 and a.json()["id"] == b.json()["id"]
    c = await client.post("/indicators", json=indicator(), headers=W)
    assert c.status_code == 409 and c.json()["errors"][0]["field"] == "code"


WRITES = [
    ("POST", "/indicators", indicator(code="X.1")),
    ("PATCH", "/indicators/STREETS.potholes", {"name": "x"}),
    ("PUT", "/indicators/STREETS.potholes/targets", {"targets": [{"period": "2026-01", "value": 1}]}),
    ("POST", "/indicators/STREETS.potholes/observations", {"period": "2026-01", "value": 1}),
    ("POST", "/observations/bulk", [{"indicator_code": "STREETS.potholes", "period": "2026-01", "value": 1}]),
    ("PUT", "/indicators/STREETS.potholes/override", {"status": "red", "reason": "staff judgement", "expires_at": "2099-01-01T00:00:00Z"}),
    ("DELETE", "/indicators/STREETS.potholes/override", None),
]


@pytest.mark.parametrize("method,path,body", WRITES)
async def test_writes_need_the_indicators_write_scope(client, method, path, body):
    await create(client)
    kw = {"json": body} if body is not None else {}
    assert (await client.request(method, path, **kw)).status_code == 401
    assert (await client.request(method, path, headers=auth("staff"), **kw)).status_code == 403
    ok = await client.request(method, path, headers=W, **kw)
    assert ok.status_code not in (401, 403, 500), ok.text
    assert (await client.get("/indicators/STREETS.potholes")).status_code == 200  # reads are open


async def test_observation_is_idempotent_and_keeps_revisions(client):
    await create(client)
    await target(client, "STREETS.potholes", 80)
    first = await observe(client, "STREETS.potholes", month(1), 70)
    assert first["status"] == "red" and first["revision"] == 1 and first["target"] == 80
    again = await observe(client, "STREETS.potholes", month(1), 70)
    assert again["revision"] == 1  # same value: nothing changes
    fixed = await observe(client, "STREETS.potholes", month_start(1).isoformat(), 79)  # a date inside the month
    assert fixed["revision"] == 2 and fixed["status"] == "green" and fixed["value"] == 79
    revs = (await client.get(f"/indicators/STREETS.potholes/observations/{month(1)}/revisions")).json()
    assert [(r["old_value"], r["new_value"], r["changed_by"]) for r in revs] == [(70, 79, "key analyst")]
    series = (await client.get("/indicators/STREETS.potholes/observations")).json()
    assert len(series) == 1


@pytest.mark.parametrize(
    "unit,value,ok",
    [("percentage", 101, False), ("percentage", -1, False), ("percentage", 100, True), ("count", -1, False),
     ("count", 0, True), ("currency", -50, True), ("duration", -0.5, False)],
)
async def test_values_are_validated_against_the_unit(client, unit, value, ok):
    await create(client, unit=unit)
    r = await client.post("/indicators/STREETS.potholes/observations", json={"period": month(1), "value": value}, headers=W)
    assert (r.status_code == 200) is ok, r.text
    if not ok:
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "value"


@pytest.mark.parametrize("period", ["FY2026", "2026-13", "soon", month(-2)])
async def test_bad_or_future_period_names_the_field(client, period):
    await create(client)
    r = await client.post("/indicators/STREETS.potholes/observations", json={"period": period, "value": 5}, headers=W)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "period"


async def test_series_statuses_ytd_and_last_year(client):
    await create(client, code="WATER.breaks", department_code="WATER", unit="count", direction="down", kind="output",
                 additive=True)
    await target(client, "WATER.breaks", 100)
    values = {month(k): v for k, v in zip(range(14, 0, -1), [90, 95, 100, 104, 106, 111, 99, 98, 97, 96, 95, 94, 93, 150],
                                          strict=True)}
    for m, v in values.items():
        await observe(client, "WATER.breaks", m, v)
    series = (await client.get("/indicators/WATER.breaks/observations")).json()
    assert [s["value"] for s in series] == list(values.values())
    got = {s["period"]: s["status"] for s in series}
    expected = {m: ("green" if v <= 105 else "yellow" if v <= 110 else "red") for m, v in values.items()}
    assert got == expected
    summary = (await client.get("/indicators/WATER.breaks/summary", params={"period": month(1)})).json()
    assert summary["value"] == 150 and summary["last_year_value"] == values[month(13)]
    assert summary["last_year_period"] == month(13)
    # fiscal year to date: the months since July (FY start) up to and including this one, summed
    from indicators.periods import fiscal_year, fiscal_year_start

    fy_first = fiscal_year_start(fiscal_year(month_start(1), 7), 7)
    ytd = [v for m, v in values.items() if month_start(0) and fy_first.isoformat()[:7] <= m <= month(1)]
    assert summary["ytd_method"] == "sum" and summary["ytd_value"] == sum(ytd) and summary["ytd_periods"] == len(ytd)


async def test_prior_period_basis_and_reevaluation_when_rules_change(client):
    await create(client, code="POLICE.response", department_code="POLICE", unit="duration", direction="down",
                 basis="prior_period", kind="outcome")
    for k, v in [(3, 10), (2, 10.4), (1, 12)]:
        await observe(client, "POLICE.response", month(k), v)
    series = (await client.get("/indicators/POLICE.response/observations")).json()
    assert [s["status"] for s in series] == ["grey", "green", "red"]
    r = await client.patch("/indicators/POLICE.response", json={"rules": [{"status": "green", "max_miss": 0.2},
                                                                       {"status": "red"}]}, headers=W)
    assert r.status_code == 200 and r.json()["status"] == "green"
    series = (await client.get("/indicators/POLICE.response/observations")).json()
    assert [s["status"] for s in series] == ["grey", "green", "green"]


async def test_persistence_and_hysteresis_through_the_api_with_events(client, app):
    ind = await create(client, persistence=2, recovery_within=0.02)
    await target(client, "STREETS.potholes", 100)
    statuses = await feed(app, "STREETS.potholes", [(6, 100), (5, 85), (4, 85), (3, 93), (2, 97), (1, 99)])
    assert statuses == ["green", "yellow", "red", "red", "red", "green"]
    series = (await client.get("/indicators/STREETS.potholes/observations")).json()
    assert [s["status"] for s in series] == statuses
    events = [(e.type, p) for e, p in await outbox_events(app, ind["id"])]
    types = [t for t, _ in events]
    assert types == [
        "indicators.indicator.status_changed",  # grey -> green
        "indicators.indicator.status_changed",  # green -> yellow
        "indicators.indicator.status_changed", "indicators.indicator.breached",
        # each further red period is noted on the same episode (issue 16)
        "indicators.indicator.breached", "indicators.indicator.breached",
        "indicators.indicator.status_changed", "indicators.indicator.recovered",
    ]
    breach = events[3][1]
    assert breach.status == "red" and breach.kind == "quality" and breach.critical is True
    assert breach.department_code == "STREETS" and breach.basis == "target" and breach.target == 100
    assert breach.magnitude == pytest.approx(0.15) and breach.function_tag == "performance"
    assert [p.episode_id for _, p in events[4:6]] == [breach.episode_id] * 2
    assert [p.period for _, p in events[3:6]] == [month(4), month(3), month(2)]
    assert events[7][1].episode_id == breach.episode_id and events[7][1].previous_status == "red"


async def test_one_breach_episode_until_recovery(client, app):
    ind = await create(client)
    await target(client, "STREETS.potholes", 100)
    # red, red, red: one episode; recovered; red again: a new episode
    assert await feed(app, "STREETS.potholes", [(4, 70), (3, 60), (2, 75), (1, 100), (0, 50)]) == [
        "red", "red", "red", "green", "red"]
    evs = [(e.type, p) for e, p in await outbox_events(app, ind["id"])]
    breaches = [p for t, p in evs if t.endswith("breached")]
    recoveries = [p for t, p in evs if t.endswith("recovered")]
    # a breach per red period, the three of the first episode under one id (issue 16)
    assert len(breaches) == 4 and len(recoveries) == 1
    assert breaches[0].episode_id == breaches[1].episode_id == breaches[2].episode_id == recoveries[0].episode_id
    assert breaches[3].episode_id != breaches[0].episode_id


async def test_override_with_reason_and_expiry(client, app):
    ind = await create(client)
    await target(client, "STREETS.potholes", 100)
    await observe(client, "STREETS.potholes", month(1), 70)
    expires = datetime.now(UTC) + timedelta(days=7)
    r = await client.put("/indicators/STREETS.potholes/override", headers=W, json={
        "status": "yellow", "reason": "Asphalt plant strike; recovery plan agreed", "expires_at": expires.isoformat()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "yellow" and body["overridden"] and body["override"]["reason"].startswith("Asphalt")
    assert body["computed_status"] == "red"
    bad = await client.put("/indicators/STREETS.potholes/override", headers=W, json={
        "status": "yellow", "reason": "too late", "expires_at": "2000-01-01T00:00:00Z"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "expires_at"
    hist = (await client.get("/indicators/STREETS.potholes/history")).json()["items"]
    assert hist[0]["overridden"] and hist[0]["override_reason"].startswith("Asphalt") and hist[0]["status"] == "yellow"
    evs = [(e.type, p) for e, p in await outbox_events(app, ind["id"])]
    # judgement lowered the flag on the same episode: a status change, not a recovery (issue 16)
    assert evs[-1][0].endswith("status_changed") and evs[-1][1].overridden and evs[-1][1].episode_id
    episode = evs[-1][1].episode_id
    dash = (await client.get("/dashboard")).text
    assert "Asphalt plant strike" in dash
    # the scheduler expires it: back to the computed red, the same episode
    async with app.state.ctx.uow() as uow:
        n = await service.expire_overrides(uow, deps_of(app.state.ctx.settings), now=expires + timedelta(seconds=1))
        await uow.commit()
    assert n == 1
    assert (await client.get("/indicators/STREETS.potholes")).json()["overridden"] is False
    evs = [(e.type, p) for e, p in await outbox_events(app, ind["id"])]
    assert evs[-1][0].endswith("status_changed") and evs[-1][1].overridden is False
    assert evs[-1][1].episode_id == episode and not any(t.endswith("breached") for t, _ in evs[-2:])


async def test_override_up_raises_a_flag_and_delete_clears_it(client, app):
    ind = await create(client)
    await target(client, "STREETS.potholes", 100)
    await observe(client, "STREETS.potholes", month(1), 100)
    r = await client.put("/indicators/STREETS.potholes/override", headers=W, json={
        "status": "red", "reason": "Data quality concerns raised by the auditor",
        "expires_at": (datetime.now(UTC) + timedelta(days=3)).isoformat()})
    assert r.json()["status"] == "red"
    evs = [(e.type, p) for e, p in await outbox_events(app, ind["id"])]
    # raised by judgement: published as a status change with no breach episode (issue 16)
    assert evs[-1][0].endswith("status_changed") and evs[-1][1].status == "red" and evs[-1][1].episode_id is None
    r = await client.delete("/indicators/STREETS.potholes/override", headers=W)
    assert r.status_code == 200 and r.json()["status"] == "green"
    assert (await client.delete("/indicators/STREETS.potholes/override", headers=W)).status_code == 404


async def test_missing_period_turns_grey_via_the_scheduler(client, app):
    ind = await create(client, frequency="monthly", grace_days=0)
    await target(client, "STREETS.potholes", 100)
    await observe(client, "STREETS.potholes", month(1), 100)
    assert (await client.get("/indicators/STREETS.potholes")).json()["status"] == "green"
    deps = deps_of(app.state.ctx.settings)
    async with app.state.ctx.uow() as uow:
        assert await service.flag_missing(uow, deps) == 0  # nothing due yet
        far = datetime.now(UTC) + timedelta(days=70)
        assert await service.flag_missing(uow, deps, now=far) == 1
        await uow.commit()
    got = (await client.get("/indicators/STREETS.potholes")).json()
    assert got["status"] == "grey" and got["missing"] and got["next_due_at"] is None
    evs = [p for e, p in await outbox_events(app, ind["id"])]
    assert evs[-1].status == "grey" and evs[-1].previous_status == "green" and evs[-1].period == month(0)
    await observe(client, "STREETS.potholes", month(0), 100)
    assert (await client.get("/indicators/STREETS.potholes")).json()["status"] == "green"


async def test_efficiency_formula_recomputed_when_either_input_arrives(client):
    await create(client, code="SANIT.clean", department_code="STREETS", unit="percentage", kind="outcome")
    await create(client, code="SANIT.spend", department_code="STREETS", unit="currency", kind="input",
                 direction="down", function_tag="spending", linked_outcome_code="SANIT.clean")
    await create(client, code="SANIT.tons", department_code="STREETS", unit="count", kind="output", direction="up")
    await observe(client, "SANIT.spend", month(2), 1000)  # before the formula exists
    await observe(client, "SANIT.tons", month(2), 50)
    await create(client, code="SANIT.cost_per_ton", department_code="STREETS", unit="currency", kind="efficiency",
                 direction="down", function_tag="spending",
                 formula={"op": "ratio", "numerator": "SANIT.spend", "denominator": "SANIT.tons"})
    await target(client, "SANIT.cost_per_ton", 20)
    await observe(client, "SANIT.tons", month(1), 40)
    assert len((await client.get("/indicators/SANIT.cost_per_ton/observations")).json()) == 1  # spend missing
    await observe(client, "SANIT.spend", month(1), 1000)
    series = (await client.get("/indicators/SANIT.cost_per_ton/observations")).json()
    assert [(s["period"], s["value"], s["status"]) for s in series] == [(month(2), 20, "green"), (month(1), 25, "red")]
    await observe(client, "SANIT.tons", month(1), 50)  # a revised input recomputes the formula
    series = (await client.get("/indicators/SANIT.cost_per_ton/observations")).json()
    assert series[-1]["value"] == 20 and series[-1]["revision"] == 2
    r = await client.post("/indicators/SANIT.cost_per_ton/observations", json={"period": month(1), "value": 3}, headers=W)
    assert r.status_code == 422
    assert (await client.get("/indicators/SANIT.spend")).json()["linked_outcome_code"] == "SANIT.clean"
    spend = (await client.get("/dashboard/indicators/SANIT.spend")).text
    assert "Buys the outcome" in spend and 'href="/dashboard/indicators/SANIT.cost_per_ton"' in spend
    assert "Computed:" in (await client.get("/dashboard/indicators/SANIT.cost_per_ton")).text


async def test_department_check_falls_back_to_the_directory(client, app):
    # no local copy, directory unreachable (settings point to a closed port): 422 naming the field
    r = await client.post("/indicators", json=indicator(code="Z.1", department_code="LIBRARY"), headers=W)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "department_code"


async def test_dashboard_csv_and_report(client):
    await create(client)
    await target(client, "STREETS.potholes", 100)
    await observe(client, "STREETS.potholes", month(2), 95)
    await observe(client, "STREETS.potholes", month(1), 70)
    await create(client, code="POLICE.crime", department_code="POLICE", unit="count", direction="down", kind="outcome",
                 critical=False)
    html = (await client.get("/dashboard")).text
    assert 'data-code="STREETS.potholes" data-status="red"' in html and 'data-status="grey"' in html
    assert "Operations &amp; Infrastructure" in html and "Public Safety" in html
    only = (await client.get("/dashboard", params={"critical": "true"})).text
    assert "POLICE.crime" not in only and "STREETS.potholes" in only
    assert "No indicators match" in (await client.get("/dashboard", params={"source": "311"})).text
    assert "POLICE.crime" in (await client.get("/dashboard", params={"source": "reported", "cluster": "SAFETY"})).text
    assert "STREETS.potholes" not in (await client.get("/dashboard", params={"cluster": "SAFETY"})).text
    assert "POLICE.crime" not in (await client.get("/dashboard", params={"kind": "quality"})).text
    csv_text = (await client.get("/dashboard.csv", params={"department": "STREETS"})).text
    lines = csv_text.strip().splitlines()
    assert len(lines) == 2 and ",red," in lines[1] and "95 70" in lines[1]
    report = await client.get("/dashboard/departments/STREETS/report")
    assert report.status_code == 200 and "Potholes repaired within 3 days" in report.text and "@media print" in report.text
    drill = await client.get("/dashboard/indicators/STREETS.potholes")
    assert drill.status_code == 200 and "<svg" in drill.text and "stroke-dasharray" in drill.text
    export = (await client.get("/dashboard/indicators/STREETS.potholes/export.csv")).text
    assert export.count("\n") == 3


async def test_metrics_exposed(client):
    await create(client)
    await target(client, "STREETS.potholes", 100)
    await observe(client, "STREETS.potholes", month(1), 50)
    text = (await client.get("/metrics")).text
    assert 'citystat_indicators_observations_total{department="STREETS"}' in text
    assert 'citystat_indicators_breaches_total{department="STREETS"}' in text
    assert 'citystat_indicators_evaluations_total{status="red"}' in text


async def test_department_stored_by_the_consumer_meanwhile_is_kept(indicators_settings):
    """The directory's own event can land (through the consumer) between the local lookup that
    missed and the on-demand copy: the indicator is still created, on the row stored first."""
    if indicators_settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite transactions take the write lock at BEGIN: no other commit can come in between")
    from indicators.models import Department

    class Directory:
        async def get(self, code):
            async with app.state.ctx.engine.begin() as conn:  # the consumer's commit
                await conn.execute(sa.insert(Department.__table__).values(code=code, name="Parks (from the event)",
                                                                           active=True, updated_at=utcnow()))
            return {"code": code, "name": "Parks (from the lookup)", "active": True}

    app = create_app(indicators_settings, directory=Directory())
    async with app_client(app) as client:
        r = await client.post("/indicators", json=indicator(code="PARKS.trees", department_code="PARKS"), headers=W)
        assert r.status_code == 201, r.text
        depts = {d["code"]: d for d in (await client.get("/departments")).json()}
    assert depts["PARKS"]["name"] == "Parks (from the event)"
