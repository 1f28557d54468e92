"""Issue 16, judgement and tickets: an override is staff judgement on the same breach episode.

Contract (escalation consumes it): setting, changing, clearing or the expiry of an override
publishes `indicators.indicator.status_changed` only (never `recovered`, never a `breached` with a
new episode), carrying overridden, override_reason, override_by, override_expires_at,
computed_status and the open episode_id. The episode follows the computed status: a genuine
recovery publishes `recovered`; a new red period during an open episode publishes `breached`
with the same episode_id and the new period."""

from datetime import UTC, datetime, timedelta

import pytest
from ind_helpers import W, create, deps_of, feed, month, observe, outbox_events, target

from indicators import service

CHANGED, BREACHED, RECOVERED = (f"indicators.indicator.{t}" for t in ("status_changed", "breached", "recovered"))


async def _events(app, ind_id, since=0):
    return [(e.type, p) for e, p in (await outbox_events(app, ind_id))[since:]]


async def _red(client, app):
    """A red indicator with its breach episode; returns (indicator, episode id, events so far)."""
    ind = await create(client)
    await target(client, "STREETS.potholes", 100)
    await observe(client, "STREETS.potholes", month(1), 70)
    evs = await _events(app, ind["id"])
    (breach,) = [p for t, p in evs if t == BREACHED]
    assert breach.episode_id and breach.computed_status == "red" and breach.overridden is False
    return ind, breach.episode_id, len(evs)


async def _override(client, status, days=7):
    expires = datetime.now(UTC) + timedelta(days=days)
    r = await client.put("/indicators/STREETS.potholes/override", headers=W, json={
        "status": status, "reason": "Asphalt plant strike; recovery plan agreed", "expires_at": expires.isoformat()})
    assert r.status_code == 200, r.text
    return expires


async def test_an_override_down_is_judgement_on_the_same_episode_not_a_recovery(client, app):
    ind, episode, n = await _red(client, app)
    expires = await _override(client, "yellow")
    evs = await _events(app, ind["id"], n)
    assert [t for t, _ in evs] == [CHANGED]
    p = evs[0][1]
    assert (p.status, p.previous_status, p.computed_status, p.overridden) == ("yellow", "red", "red", True)
    assert p.episode_id == episode and p.override_by == "key analyst"
    assert p.override_reason.startswith("Asphalt") and p.override_expires_at == expires
    body = (await client.get("/indicators/STREETS.potholes")).json()
    assert body["episode_id"] == episode and body["status"] == "yellow" and body["computed_status"] == "red"


@pytest.mark.parametrize("end", ["expires", "cleared"])
async def test_when_the_override_ends_on_a_red_indicator_the_episode_goes_on(client, app, end):
    ind, episode, n = await _red(client, app)
    expires = await _override(client, "yellow")
    n += 1
    if end == "expires":
        async with app.state.ctx.uow() as uow:
            assert await service.expire_overrides(uow, deps_of(app.state.ctx.settings), now=expires + timedelta(seconds=1)) == 1
            await uow.commit()
    else:
        assert (await client.delete("/indicators/STREETS.potholes/override", headers=W)).status_code == 200
    evs = await _events(app, ind["id"], n)
    assert [t for t, _ in evs] == [CHANGED]  # no new breach, no second ticket for the same period
    p = evs[0][1]
    assert (p.status, p.previous_status, p.computed_status, p.overridden) == ("red", "yellow", "red", False)
    assert p.episode_id == episode and p.period == month(1)
    assert (await client.get("/indicators/STREETS.potholes")).json()["episode_id"] == episode


async def test_changing_an_override_is_a_status_change_too(client, app):
    ind, episode, n = await _red(client, app)
    await _override(client, "yellow")
    await _override(client, "green")
    await _override(client, "green")  # the same status again, a new reason or expiry: still published
    evs = await _events(app, ind["id"], n)
    assert [t for t, _ in evs] == [CHANGED, CHANGED, CHANGED]
    assert [(p.status, p.episode_id, p.overridden) for _, p in evs] == [("yellow", episode, True)] + [
        ("green", episode, True)] * 2


async def test_an_override_up_raises_the_flag_without_inventing_an_episode(client, app):
    ind = await create(client)
    await target(client, "STREETS.potholes", 100)
    await observe(client, "STREETS.potholes", month(1), 100)
    n = len(await _events(app, ind["id"]))
    await _override(client, "red")
    evs = await _events(app, ind["id"], n)
    assert [t for t, _ in evs] == [CHANGED]
    p = evs[0][1]
    assert (p.status, p.computed_status, p.overridden, p.episode_id) == ("red", "green", True, None)
    assert (await client.get("/indicators/STREETS.potholes")).json()["episode_id"] is None


async def test_a_genuine_recovery_under_an_override_is_a_recovery(client, app):
    ind, episode, n = await _red(client, app)
    await _override(client, "yellow")
    n += 1
    await observe(client, "STREETS.potholes", month(1), 99)  # the figure is corrected: green
    evs = await _events(app, ind["id"], n)
    assert [t for t, _ in evs] == [RECOVERED]
    p = evs[0][1]
    assert (p.episode_id, p.computed_status, p.overridden, p.status) == (episode, "green", True, "yellow")
    assert (await client.get("/indicators/STREETS.potholes")).json()["episode_id"] is None
    assert (await client.delete("/indicators/STREETS.potholes/override", headers=W)).status_code == 200
    evs = await _events(app, ind["id"], n + 1)
    assert [(t, p.status, p.episode_id) for t, p in evs] == [(CHANGED, "green", None)]


async def test_a_new_red_period_during_the_episode_is_noted_on_it(client, app):
    ind = await create(client)
    await target(client, "STREETS.potholes", 100)
    assert await feed(app, "STREETS.potholes", [(3, 70), (2, 60), (1, 50)]) == ["red", "red", "red"]
    breaches = [p for t, p in await _events(app, ind["id"]) if t == BREACHED]
    assert [b.period for b in breaches] == [month(3), month(2), month(1)]
    assert len({b.episode_id for b in breaches}) == 1
    assert [b.previous_status for b in breaches][1:] == ["red", "red"]


async def test_a_new_red_period_under_an_override_is_noted_on_the_episode_too(client, app):
    ind, episode, n = await _red(client, app)
    await _override(client, "yellow")
    n += 1
    # a revision of the same period is not a new period: nothing to publish
    await observe(client, "STREETS.potholes", month(1), 65)
    assert await _events(app, ind["id"], n) == []
    await observe(client, "STREETS.potholes", month(0), 60)
    evs = await _events(app, ind["id"], n)
    assert [(t, p.period, p.episode_id, p.status, p.computed_status) for t, p in evs] == [
        (BREACHED, month(0), episode, "yellow", "red")]
