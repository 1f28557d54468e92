"""Bulk ingest: 100,000 observations in one call, idempotent on resubmission; CSV; all or nothing."""

import random
from datetime import date, timedelta

import orjson
import sqlalchemy as sa
from ind_helpers import W, create, standing_period, target

from indicators.models import ObservationRevision, observations

N_IND, N_DAYS = 50, 2000  # 100,000 observations


async def _count(app, table):
    async with app.state.ctx.engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()


async def test_bulk_100k_observations_idempotent(client, app):
    for i in range(N_IND):
        await create(client, code=f"BULK.{i:03d}", unit="count", direction="down", frequency="daily", kind="output",
                     critical=False)
    # the earliest target allowed (five fiscal years back): the first days, before it, have none
    first = date.today() - timedelta(days=N_DAYS + 1)
    since = date.fromisoformat(standing_period() + "-01")
    assert first < since
    await target(client, "BULK.000", 120, period=since.isoformat())
    rng = random.Random(1)
    rows = [{"indicator_code": f"BULK.{i:03d}", "period": (first + timedelta(days=d)).isoformat(),
             "value": rng.randint(50, 150)} for i in range(N_IND) for d in range(N_DAYS)]
    body = orjson.dumps(rows)
    r = await client.post("/observations/bulk", content=body, headers={**W, "content-type": "application/json"})
    assert r.status_code == 200, r.text[:500]
    res = r.json()
    assert (res["received"], res["inserted"], res["updated"], res["unchanged"]) == (100_000, 100_000, 0, 0)
    assert await _count(app, observations) == 100_000
    # the statuses are evaluated for every point of the indicator that has a target
    series = (await client.get("/indicators/BULK.000/observations", params={"limit": 10_000})).json()
    assert len(series) == N_DAYS
    prev = None
    for s, row in zip(series, rows[:N_DAYS], strict=True):
        if row["period"] < since.isoformat():
            assert s["status"] == "grey" and s["target"] is None, s
            continue
        miss = (row["value"] - 120) / 120  # direction down, target 120; city defaults 5% / 10%, recovery 5%
        want = "green" if miss <= 0.05 else "yellow" if miss <= 0.10 else "red"
        if prev == "red" and miss > 0.05:
            want = "red"  # hysteresis
        assert s["status"] == want, (s, row)
        prev = want
    assert {s["status"] for s in series} == {"grey", "green", "yellow", "red"}

    # resubmission: nothing changes, nothing is revised
    r = await client.post("/observations/bulk", content=body, headers={**W, "content-type": "application/json"})
    assert (r.json()["inserted"], r.json()["updated"], r.json()["unchanged"]) == (0, 0, 100_000)
    assert await _count(app, observations) == 100_000
    assert await _count(app, ObservationRevision.__table__) == 0

    # a CSV correcting 1,000 values: replaced, with their revision history
    changed = rows[:1000]
    csv_text = "indicator_code,period,value,note\n" + "".join(
        f"{r['indicator_code']},{r['period']},{r['value'] + 1},corrected\n" for r in changed)
    r = await client.post("/observations/bulk", content=csv_text, headers={**W, "content-type": "text/csv"})
    assert r.status_code == 200, r.text[:500]
    assert (r.json()["inserted"], r.json()["updated"]) == (0, 1000)
    assert await _count(app, ObservationRevision.__table__) == 1000
    revs = (await client.get(f"/indicators/BULK.000/observations/{rows[5]['period']}/revisions")).json()
    assert [(x["old_value"], x["new_value"], x["source"]) for x in revs] == [(rows[5]["value"], rows[5]["value"] + 1, "bulk")]


async def test_bulk_is_all_or_nothing_with_a_row_report(client, app):
    await create(client)  # a percentage, monthly
    rows = [
        {"indicator_code": "STREETS.potholes", "period": "2026-01", "value": 50},
        {"indicator_code": "STREETS.potholes", "period": "2026-02", "value": 150},
        {"indicator_code": "NOPE", "period": "2026-02", "value": 1},
        {"indicator_code": "STREETS.potholes", "period": "2026-W07", "value": 1},
        {"indicator_code": "STREETS.potholes", "period": "2026-03", "value": "abc"},
    ]
    r = await client.post("/observations/bulk", json={"observations": rows}, headers=W)
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert [(e["row"], e["field"]) for e in errors] == [(2, "value"), (3, "indicator_code"), (4, "period"), (5, "value")]
    assert await _count(app, observations) == 0
    bad_csv = await client.post("/observations/bulk", content="a,b\n1,2\n", headers={**W, "content-type": "text/csv"})
    assert bad_csv.status_code == 422 and bad_csv.json()["errors"][0]["field"] == "body"


async def test_a_bulk_body_refused_as_a_whole_says_why(client):
    """A body that is not rows at all is one error item (row 0) naming the body or its content type."""
    cases = [
        (b"[{", "application/json", "body", "not JSON"),
        (b'{"rows": []}', "application/json", "body", 'expected a list or {"observations": [...]}'),
        (b"[]", "application/json", "body", "no rows"),
        (b"code,period\nX,2024-01\n", "text/csv", "body", "expected the CSV header indicator_code,period,value[,note]"),
        (b"\xff\xfe", "text/csv", "body", "CSV must be UTF-8"),
        (b"<rows/>", "application/xml", "content-type", "send application/json or text/csv"),
    ]
    for body, ctype, field, message in cases:
        r = await client.post("/observations/bulk", content=body, headers={**W, "content-type": ctype})
        assert r.status_code == 422, (ctype, r.text)
        [error] = r.json()["errors"]
        assert (error["row"], error["field"]) == (0, field) and error["message"].startswith(message), error
