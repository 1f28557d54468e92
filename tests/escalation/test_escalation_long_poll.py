"""GET /tickets as a conditional GET and a long poll (citystat_common.longpoll): a system that
watches for new tickets is answered when one is committed, not at its next poll."""

from __future__ import annotations

import asyncio

from esc_helpers import OPS, breach

from citystat_common.longpoll import CommitSignal

FLAG = {"department_code": "health", "title": "Clinic wait times feel longer than reported",
        "reason": "Frontline staff report 3-hour waits", "severity": 2, "function_tag": "customer_service"}


async def _etag(h) -> str:  # type: ignore[no-untyped-def]
    r = await h.client.get("/tickets")
    assert r.status_code == 200 and r.headers["etag"].startswith('W/"'), r.headers
    return r.headers["etag"]


async def test_a_conditional_get_answers_304_until_the_tickets_change(harness):
    h = harness
    tag = await _etag(h)
    same = await h.client.get("/tickets", headers={"If-None-Match": tag})
    assert same.status_code == 304 and same.headers["etag"] == tag and not same.content
    assert (await h.client.get("/tickets", headers={"If-None-Match": '"other", ' + tag})).status_code == 304
    h.clock.advance(hours=5)  # age_hours moves with the clock; it is not a change of the stored tickets
    assert (await h.client.get("/tickets", headers={"If-None-Match": tag})).status_code == 304
    assert (await h.client.post("/tickets", json=FLAG, headers=OPS)).status_code == 201
    changed = await h.client.get("/tickets", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    assert [t["title"] for t in changed.json()["items"]] == [FLAG["title"]]


async def test_a_long_poll_answers_when_the_consumer_opens_a_ticket(harness, monkeypatch):
    h = harness
    # long enough that only a wake-up can answer it in time: PostgreSQL's NOTIFY (nothing else
    # rechecks within 60 s); SQLite has no notification between processes, and rechecks
    monkeypatch.setattr(CommitSignal, "listening_recheck", 60.0)
    if h.engine.dialect.name == "postgresql":
        monkeypatch.setattr(CommitSignal, "recheck", 60.0)
    tag = await _etag(h)
    waiting = asyncio.create_task(h.client.get(
        "/tickets", params={"source": "threshold"}, headers={"If-None-Match": tag, "Prefer": "wait=20"}))
    await asyncio.sleep(0.5)
    assert not waiting.done()  # nothing changed yet: it waits
    await h.deliver(breach())  # the worker's consumer, on its own engine and connection
    r = await asyncio.wait_for(waiting, timeout=15)
    assert r.status_code == 200, r.text
    assert [t["indicator_id"] for t in r.json()["items"]] == ["ind-1"] and r.headers["etag"] != tag


async def test_a_long_poll_with_nothing_new_ends_in_304_and_its_wait_is_not_counted_as_latency(harness):
    h = harness
    tag = await _etag(h)
    before = await _latency_sum(h)
    r = await h.client.get("/tickets", headers={"If-None-Match": tag, "Prefer": "wait=0.6"})
    assert r.status_code == 304 and r.headers["etag"] == tag
    assert await _latency_sum(h) - before < 0.6  # the histogram holds the reads, not the wait


async def test_unreadable_or_absent_wait_preferences_answer_at_once(harness):
    h = harness
    tag = await _etag(h)
    for prefer in ("wait=soon", "respond-async", "wait=-3", "wait=nan"):
        r = await asyncio.wait_for(h.client.get("/tickets", headers={"If-None-Match": tag, "Prefer": prefer}), 5)
        assert r.status_code == 304, prefer
    r = await h.client.get("/tickets", headers={"Prefer": "wait=30"})  # nothing held: the result at once
    assert r.status_code == 200 and r.headers["etag"] == tag


async def _latency_sum(h) -> float:  # type: ignore[no-untyped-def]
    text = (await h.client.get("/metrics")).text
    for line in text.splitlines():
        if (line.startswith("citystat_http_request_duration_seconds_sum") and 'route="/tickets"' in line
                and 'method="GET"' in line):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
