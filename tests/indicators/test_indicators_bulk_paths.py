"""The bulk write path: new rows by COPY straight into the table (PostgreSQL) and by the portable
INSERT ... ON CONFLICT give the same stored rows, statuses, history and events; re-sending changes
nothing; a changed value is a revision; concurrent writers of one indicator serialize (no 500);
malformed rows get a per-row error. On SQLite both runs take the portable path."""

import asyncio
from datetime import UTC, date, datetime, timedelta

import orjson
import pytest
import sqlalchemy as sa
from ind_helpers import W, create, deps_of, outbox_events, target

from indicators import observation_store, service
from indicators.models import Indicator, IndicatorDescription, ObservationRevision, StatusChange, observations

DAYS = 300
FIRST = date.today() - timedelta(days=DAYS)  # the last day is yesterday: the indicators are current
# One indicator per evaluation shape: each basis, each direction, persistence, history.
SHAPES = {
    "T": dict(direction="up"),
    "D": dict(direction="down", persistence=2, recovery_within=0.02),
    "B": dict(direction="band", band_tolerance=0.03),
    "P": dict(direction="up", basis="prior_period"),
    "Y": dict(direction="down", basis="same_period_last_year"),
    "H": dict(direction="up", basis="history", history_window=5, history_k=1.0),
}


def _value(shape: str, d: int) -> float:
    # crosses the 5% / 10% lines both ways, with runs long enough for persistence and hysteresis
    wave = [100, 104, 108, 112, 115, 109, 106, 103, 99, 93, 88, 91, 96, 101]
    return float(wave[(d + len(shape) * 3 + ord(shape[0])) % len(wave)])


def _rows(prefix: str, days: range, bump: int = 0) -> list[dict]:
    return [{"indicator_code": f"{prefix}.{s}", "period": (FIRST + timedelta(days=d)).isoformat(),
             "value": _value(s, d) + bump} for s in SHAPES for d in days]


async def _setup(client, prefix: str) -> None:
    for s, kw in SHAPES.items():
        await create(client, code=f"{prefix}.{s}", unit="count", frequency="daily", kind="output", critical=True, **kw)
        await target(client, f"{prefix}.{s}", 100, period=(FIRST - timedelta(days=30)).isoformat())
        await target(client, f"{prefix}.{s}", 104, period=(FIRST + timedelta(days=120)).isoformat())


async def _post(client, rows, headers=W):
    r = await client.post("/observations/bulk", content=orjson.dumps(rows), headers={**headers, "content-type": "application/json"})
    assert r.status_code == 200, r.text[:500]
    return r.json()


async def _snapshot(app, prefix: str):
    """Everything the write path stores, keyed by (shape, period): ids and clocks left out."""
    async with app.state.ctx.engine.connect() as conn:
        inds = {i: c.split(".", 1)[1] for i, c in (await conn.execute(
            sa.select(Indicator.id, Indicator.code).where(Indicator.code.like(f"{prefix}.%")))).all()}
        obs = sorted(
            (inds[r.indicator_id], r.period_start, r.period_end, r.period_label, r.value, r.status, r.raw_status,
             r.miss, r.reference, r.streak, r.reason, r.revision, r.note, r.source, r.updated_by)
            for r in (await conn.execute(sa.select(observations).where(observations.c.indicator_id.in_(inds)))).all())
        revs = sorted((inds[r.indicator_id], r.period_start, r.old_value, r.new_value, r.source) for r in (
            await conn.execute(sa.select(ObservationRevision.__table__).where(
                ObservationRevision.indicator_id.in_(inds)))).all())
        hist = [(inds[r.indicator_id], r.period_label, r.previous_status, r.status, r.value, r.target, r.magnitude,
                 r.event, r.reason) for r in (await conn.execute(sa.select(StatusChange.__table__).where(
                     StatusChange.indicator_id.in_(inds)).order_by(StatusChange.id))).all()]
        state = sorted((inds[r.id], r.status, r.computed_status, r.latest_period_start, r.latest_value,
                        r.latest_reference, r.latest_miss, r.status_reason, r.episode_id is None) for r in (
            await conn.execute(sa.select(Indicator.__table__).where(Indicator.id.in_(inds)))).all())
    events = []
    for e, p in await outbox_events(app):
        if e.subject in inds:
            doc = p.model_dump(mode="json")
            for k in ("indicator_id", "indicator_code", "indicator_name", "episode_id"):
                doc.pop(k, None)
            events.append((e.type, inds[e.subject], doc))
    return {"obs": obs, "revisions": revs, "history": hist, "state": state, "events": events}


async def _scenario(client, app, prefix: str):
    """Three calls: new rows; the same rows again plus new ones; revisions (some of red periods)."""
    await _setup(client, prefix)
    first = await _post(client, _rows(prefix, range(0, 200)))
    assert (first["inserted"], first["updated"], first["unchanged"]) == (1200, 0, 0)
    again = await _post(client, _rows(prefix, range(0, DAYS)))
    assert (again["inserted"], again["updated"], again["unchanged"]) == (600, 0, 1200)
    revised = await _post(client, _rows(prefix, range(150, 170), bump=7))
    assert (revised["inserted"], revised["updated"], revised["unchanged"]) == (0, 120, 0)
    last = (FIRST + timedelta(days=DAYS - 1)).isoformat()  # yesterday far off: breaches
    await _post(client, [{"indicator_code": f"{prefix}.{s}", "period": last,
                          "value": 200.0 if SHAPES[s]["direction"] == "down" else 50.0} for s in SHAPES])
    return await _snapshot(app, prefix)


async def test_copy_and_portable_paths_store_the_same(client, app, monkeypatch):
    monkeypatch.setattr(observation_store, "NEW_ROWS_COPY_MIN", 1)  # PostgreSQL: every call's new rows by COPY
    via_copy = await _scenario(client, app, "CP")
    monkeypatch.setattr(observation_store, "NEW_ROWS_COPY_MIN", 10**9)  # INSERT ... ON CONFLICT everywhere
    portable = await _scenario(client, app, "PT")
    assert len(via_copy["obs"]) == 6 * DAYS
    assert len(via_copy["revisions"]) == 126
    assert {o[5] for o in via_copy["obs"]} == {"green", "yellow", "red", "grey"}  # grey: history warm-up
    assert {e[0] for e in via_copy["events"]} == {"indicators.indicator.status_changed", "indicators.indicator.breached"}
    for key in via_copy:
        assert via_copy[key] == portable[key], key


async def test_rows_of_one_call_share_the_time_of_the_write(client, app, monkeypatch):
    """PostgreSQL's COPY leaves updated_at to the column default (the transaction's time); the
    portable path sets it: either way every row of a call carries one recent, aware time."""
    monkeypatch.setattr(observation_store, "NEW_ROWS_COPY_MIN", 1)
    await _setup(client, "UA")
    before = datetime.now(UTC)
    await _post(client, _rows("UA", range(0, 50)))
    async with app.state.ctx.engine.connect() as conn:
        times = (await conn.execute(sa.select(observations.c.updated_at).join(
            Indicator, Indicator.id == observations.c.indicator_id).where(Indicator.code.like("UA.%")))).scalars().all()
    assert len(times) == 50 * len(SHAPES)
    assert len(set(times)) == 1
    assert before - timedelta(minutes=1) < times[0] < datetime.now(UTC) + timedelta(minutes=1)


async def test_resend_is_a_no_op_and_a_change_is_a_revision(client, app):
    await _setup(client, "RS")
    rows = _rows("RS", range(0, 120))
    await _post(client, rows)
    before = await _snapshot(app, "RS")
    res = await _post(client, rows)
    assert (res["inserted"], res["updated"], res["unchanged"]) == (0, 0, len(rows))
    assert await _snapshot(app, "RS") == before
    # one value changed (in a red stretch of the down indicator): revised, audited, re-evaluated forward
    obs = {(o[0], o[1]): o for o in before["obs"]}
    red = next(k for k, o in sorted(obs.items()) if k[0] == "D" and o[5] == "red")
    row = {"indicator_code": "RS.D", "period": red[1].isoformat(), "value": 50.0, "note": "recounted"}
    res = await _post(client, [row])
    assert (res["inserted"], res["updated"], res["unchanged"]) == (0, 1, 0)
    after = await _snapshot(app, "RS")
    assert after["revisions"] == [("D", red[1], obs[red][4], 50.0, "bulk")]
    now = {(o[0], o[1]): o for o in after["obs"]}
    assert now[red][4:6] == (50.0, "green") and now[red][11:13] == (2, "recounted")
    assert {k: v for k, v in now.items() if k[0] != "D"} == {k: v for k, v in obs.items() if k[0] != "D"}
    assert await _snapshot(app, "RS") == after


async def test_concurrent_writers_of_one_indicator_serialize(client, app):
    """A second writer waits for the first one's commit and then sees its rows: the overlap is
    revised (with its audit rows), never inserted twice (a duplicate key would be a 500)."""
    from indicators.api_observations import _resolve_bulk

    await _setup(client, "CC")
    ctx = app.state.ctx
    recorded, release = asyncio.Event(), asyncio.Event()

    async def write(rows, hold=False):
        async with ctx.uow() as uow:
            items, errors = await _resolve_bulk(uow, deps_of(ctx.settings), docs=rows)
            assert not errors
            rec = await service.record_observations(uow, deps_of(ctx.settings), items=items, actor="t", source="bulk")
            if hold:
                recorded.set()
                await release.wait()
            await uow.commit()
            return rec

    first = asyncio.create_task(write(_rows("CC", range(0, 150)), hold=True))
    await asyncio.wait_for(recorded.wait(), 30)
    second = asyncio.create_task(write(_rows("CC", range(100, 250), bump=1)))
    await asyncio.sleep(0.3)
    assert not second.done()  # waiting for the first writer
    release.set()
    ra, rb = await asyncio.wait_for(asyncio.gather(first, second), 30)
    overlap = 6 * 50
    assert (ra.inserted, ra.updated, rb.inserted, rb.updated) == (900, 0, 600, overlap)
    snap = await _snapshot(app, "CC")
    assert len(snap["obs"]) == 6 * 250 and len(snap["revisions"]) == overlap


@pytest.mark.parametrize("row, field", [
    ({"indicator_code": ["T"], "period": "2024-01-01", "value": 1}, "indicator_code"),
    ({"indicator_code": {"a": 1}, "period": "2024-01-01", "value": 1}, "indicator_code"),
    ({"indicator_code": "BAD.T", "period": ["2024-01-01"], "value": 1}, "period"),
    ({"indicator_code": "BAD.T", "period": "2999-01-01", "value": 1}, "period"),
    ({"indicator_code": "BAD.T", "period": "2024-01-01", "value": {"x": 1}}, "value"),
    ({"indicator_code": "BAD.T", "period": "2024-01-01", "value": -1}, "value"),
    ({"indicator_code": "BAD.T", "period": "2024-01-01", "value": "1e999"}, "value"),
    ({"indicator_code": "BAD.T", "period": "2024-01-01", "value": True}, "value"),
    ({"indicator_code": "BAD.T", "period": "2024-01-01", "value": 1, "extra": 1}, "extra"),
])
async def test_malformed_rows_get_a_row_error(client, app, row, field):
    await create(client, code="BAD.T", unit="count", frequency="daily", kind="output")
    good = {"indicator_code": "BAD.T", "period": "2024-01-02", "value": 5}
    r = await client.post("/observations/bulk", json=[good, row], headers=W)
    assert r.status_code == 422, r.text
    assert [(e["row"], e["field"]) for e in r.json()["errors"]] == [(2, field)]
    async with app.state.ctx.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(observations))).scalar_one() == 0


async def test_an_indicator_with_observations_cannot_be_deleted_or_rekeyed(client, app):
    """observations has no per-row foreign key (migration 0002); the trigger on indicators keeps
    every stored observation's indicator in place instead, on both databases."""
    for code in ("KEEP.OBS", "KEEP.EMPTY"):  # no targets: no other table's key is in the way
        await create(client, code=code, unit="count", frequency="daily", kind="output")
    await _post(client, [{"indicator_code": "KEEP.OBS", "period": (FIRST + timedelta(days=d)).isoformat(), "value": 5}
                         for d in range(3)])
    async with app.state.ctx.engine.connect() as conn:
        observed = await conn.scalar(sa.select(Indicator.id).where(Indicator.code == "KEEP.OBS"))
        # their descriptions' foreign key would refuse first: take it out of the way
        await conn.execute(sa.delete(IndicatorDescription.__table__).where(IndicatorDescription.indicator_id.in_(
            sa.select(Indicator.id).where(Indicator.code.like("KEEP.%")))))
        for stmt in (sa.delete(Indicator.__table__).where(Indicator.id == observed),
                     sa.update(Indicator.__table__).where(Indicator.id == observed).values(id="re-keyed")):
            with pytest.raises(sa.exc.DBAPIError, match="retire it instead of deleting it"):
                async with conn.begin_nested():
                    await conn.execute(stmt)
        # an indicator nobody observed yet has nothing to protect
        await conn.execute(sa.delete(Indicator.__table__).where(Indicator.code == "KEEP.EMPTY"))
        assert await conn.scalar(sa.select(sa.func.count()).select_from(observations)
                                 .where(observations.c.indicator_id == observed)) == 3
        await conn.rollback()
