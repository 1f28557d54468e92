"""Breach -> ticket: routing per function tag, vacant roles, dedup per episode, recovery,
directory down (local copy), unknown department (managing director's queue). Both databases."""

from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa
from esc_helpers import OPS, breach, person, recovery

from escalation.models import PLUMBING, Ticket
from escalation.routing import CircuitBreaker, CircuitOpen

TAG_ROLE = {
    "technology": "oit_partner",
    "staffing": "hr_partner",
    "spending": "budget_partner",
    "customer_service": "customer_service_officer",
    "performance": "stat_partner",
}


async def test_breach_routes_to_the_partner_of_each_function_tag(harness):
    for i, tag in enumerate(TAG_ROLE):
        assert await harness.deliver(breach(indicator=f"ind-{tag}", tag=tag, episode=f"ep-{i}")) == "processed"
    tickets = {t["indicator_id"]: t for t in await harness.tickets()}
    assert len(tickets) == 5
    for tag, role in TAG_ROLE.items():
        t = tickets[f"ind-{tag}"]
        assert t["assignee"]["name"] == person("STREETS", role), tag
        assert t["assignee_role"] == role and t["level"] == 0 and t["status"] == "open"
        assert t["routing_source"] == "directory" and t["routing_note"] is None
        assert t["cluster_code"] == "OPERATIONS" and t["source"] == "threshold"
    # who was responsible at the time is recorded with the chain above them
    detail = await harness.ticket(tickets["ind-technology"]["id"])
    assert [c["role"] for c in detail["chain"]] == ["oit_partner", "department_head", "deputy_mayor", "managing_director"]
    assert detail["chain"][1]["person"]["name"] == person("STREETS", "department_head")
    routed = next(e for e in detail["timeline"] if e["kind"] == "routed")
    assert person("STREETS", "oit_partner") in routed["text"]
    # ticket.opened goes out through the outbox, with the assignee
    rows = await harness.rows(sa.select(PLUMBING.outbox.c.payload).where(PLUMBING.outbox.c.event_type == "escalation.ticket.opened"))
    opened = [orjson.loads(r[0]) for r in rows]
    assert len(opened) == 5
    e = next(x for x in opened if x["data"]["indicator_id"] == "ind-staffing")
    assert e["data"]["assignee"]["name"] == person("STREETS", "hr_partner")
    assert e["data"]["assignee_role"] == "hr_partner" and e["subject"] == e["data"]["ticket_id"]


async def test_vacant_partner_falls_back_to_department_head_and_says_so(harness, directory):
    r = await directory.client.delete("/departments/PARKS/senior-team/hr_partner", headers={"X-API-Key": "test-key-directory"})
    assert r.status_code == 204
    await harness.deliver(breach(indicator="parks-overtime", department="PARKS", tag="staffing"))
    [t] = await harness.tickets(department="PARKS")
    assert t["assignee"]["name"] == person("PARKS", "department_head")
    assert t["assignee_role"] == "department_head"
    assert "hr_partner role is vacant" in t["routing_note"] and "department head" in t["routing_note"]


async def test_same_breach_twice_opens_one_ticket_and_repeats_add_to_it(harness):
    event = breach(episode="ep-A")
    assert await harness.deliver(event) == "processed"
    assert await harness.deliver(event) == "duplicate"  # the very same event redelivered
    assert await harness.deliver(breach(episode="ep-A", period="2026-11")) == "processed"  # a repeat breach
    [t] = await harness.tickets()
    assert t["breach_count"] == 2 and t["period"] == "2026-11"
    detail = await harness.ticket(t["id"])
    assert [e["kind"] for e in detail["timeline"]].count("breach_repeated") == 1
    assert await harness.outbox_types(t["id"]) == ["escalation.ticket.opened"]


async def test_breach_after_resolution_opens_a_new_ticket(harness):
    await harness.deliver(breach(episode="ep-1"))
    [first] = await harness.tickets()
    r = await harness.client.post(f"/tickets/{first['id']}/resolve", json={"reason": "fixed", "note": "server replaced"},
                                  headers=OPS)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "resolved" and r.json()["resolution_reason"] == "fixed"
    # the indicator is still red in the same episode: a breach after resolution opens a new ticket
    await harness.deliver(breach(episode="ep-1", period="2026-11"))
    # ... and after recovery, a new episode before staff resolve that ticket is noted on it: red again
    await harness.deliver(recovery(episode="ep-1"))
    await harness.deliver(breach(episode="ep-2", period="2026-12"))
    tickets = await harness.tickets()
    assert len(tickets) == 2
    assert sorted(t["episode_id"] for t in tickets) == ["ep-1", "ep-2"]
    assert sorted(t["status"] for t in tickets) == ["open", "resolved"]
    second = next(t for t in tickets if t["status"] == "open")
    assert not second["review_pending"] and second["period"] == "2026-12"
    assert "red_again" in [e["kind"] for e in (await harness.ticket(second["id"]))["timeline"]]
    # once staff resolve it, the next episode opens a new ticket
    await harness.client.post(f"/tickets/{second['id']}/resolve", json={"reason": "fixed"}, headers=OPS)
    await harness.deliver(recovery(episode="ep-2"))
    await harness.deliver(breach(episode="ep-3", period="2027-01"))
    assert len(await harness.tickets()) == 3


async def test_recovery_marks_pending_review_by_default_and_resolves_when_the_policy_says_so(harness):
    await harness.deliver(breach(indicator="a", episode="ep-a"))
    await harness.deliver(recovery(indicator="a", episode="ep-a"))
    [a] = await harness.tickets(indicator_id="a")
    assert a["status"] == "open" and a["review_pending"] and a["next_escalation_at"] is None
    kinds = [e["kind"] for e in (await harness.ticket(a["id"]))["timeline"]]
    assert "recovered" in kinds and "review_pending" in kinds
    # a late breach of the recovered episode does not reopen anything
    await harness.deliver(breach(indicator="a", episode="ep-a", period="2026-09"))
    assert len(await harness.tickets(indicator_id="a")) == 1

    policy = (await harness.client.get("/policies/default")).json()
    body = {k: policy[k] for k in ("description", "is_default", "departments", "levels", "ack_timeout")}
    r = await harness.client.put("/policies/default", json={**body, "resolve_on_recovery": True}, headers=OPS)
    assert r.status_code == 200, r.text
    await harness.deliver(breach(indicator="b", episode="ep-b"))
    await harness.deliver(recovery(indicator="b", episode="ep-b"))
    [b] = await harness.tickets(indicator_id="b")
    assert b["status"] == "resolved" and b["resolution_reason"] == "recovered"
    assert (await harness.outbox_types(b["id"]))[-1] == "escalation.ticket.resolved"


async def test_severity_comes_from_the_miss_and_the_critical_flag(harness):
    await harness.deliver(breach(indicator="small", episode="e1", magnitude=0.05))
    await harness.deliver(breach(indicator="medium", episode="e2", magnitude=0.15))
    await harness.deliver(breach(indicator="medium-critical", episode="e3", magnitude=0.15, critical=True))
    await harness.deliver(breach(indicator="huge", episode="e4", magnitude=0.8))
    sev = {t["indicator_id"]: t["severity"] for t in await harness.tickets()}
    assert sev == {"small": 4, "medium": 3, "medium-critical": 2, "huge": 1}


async def test_a_department_in_the_local_copy_is_routed_from_it_without_asking_the_directory(harness_down, directory):
    """The copy is the directory's own state as its events carried it: routing from it needs no
    round trip, and a directory that is down changes nothing for the departments it holds."""
    h = harness_down
    assert await h.feed_directory_changes(directory.database_url) > 12
    copy = (await h.client.get("/routing-copy")).json()
    assert len(copy) == 12 and all(c["roles"] for c in copy)
    for i, tag in enumerate(("spending", "customer_service")):
        await h.deliver(breach(indicator=f"w{i}", department="WATER", tag=tag, episode=f"w{i}"))
    t0, t1 = (await h.tickets(indicator_id="w0"))[0], (await h.tickets(indicator_id="w1"))[0]
    assert t0["assignee"]["name"] == person("WATER", "budget_partner")
    assert t1["assignee"]["name"] == person("WATER", "customer_service_officer")
    assert t0["routing_source"] == "local_copy" and t0["routing_note"] is None
    detail = await h.ticket(t0["id"])
    assert [c["person"]["name"] for c in detail["chain"]][:2] == [person("WATER", "budget_partner"),
                                                                 person("WATER", "department_head")]
    assert h.deps.directory.breaker.failures == 0  # never asked


async def test_directory_down_and_a_department_the_copy_lacks_goes_to_the_queue_with_the_reason(harness_down, directory):
    h = harness_down
    await h.feed_directory_changes(directory.database_url)
    await h.deliver(breach(indicator="z1", department="ZOO", episode="z1"))
    [t] = await h.tickets(indicator_id="z1")
    assert t["routing_source"] == "fallback" and t["assignee_role"] == "managing_director"
    assert "unreachable" in t["routing_note"] and "managing director" in t["routing_note"]
    # the breaker opens after repeated failures: later calls do not even try
    for i in (2, 3):
        await h.deliver(breach(indicator=f"z{i}", department="ZOO", episode=f"z{i}"))
    assert h.deps.directory.breaker.state == "open"
    await h.deliver(breach(indicator="z4", department="ZOO", episode="z4"))
    t4 = (await h.tickets(indicator_id="z4"))[0]
    assert "circuit breaker is open" in t4["routing_note"]


async def test_unknown_department_goes_to_the_managing_directors_queue(harness, directory):
    await harness.feed_directory_changes(directory.database_url)
    await harness.deliver(breach(indicator="x", department="ZOO", episode="zoo-1"))
    [t] = await harness.tickets(department="ZOO")
    md = person("STREETS", "managing_director")
    assert t["assignee"]["name"] == md and t["assignee_role"] == "managing_director"
    assert t["level"] == 3 and t["routing_source"] == "fallback"
    assert "does not know department ZOO" in t["routing_note"] and "managing director" in t["routing_note"]


async def test_directory_and_copy_both_missing_never_drops_the_ticket(harness_down):
    h = harness_down
    assert await h.deliver(breach(indicator="y", department="ZOO", episode="zoo-2")) == "processed"
    [t] = await h.tickets()
    assert t["assignee"] is None and t["level"] == 3 and t["status"] == "open"
    assert "unreachable" in t["routing_note"] and "unassigned" in t["routing_note"]
    assert await h.outbox_types(t["id"]) == ["escalation.ticket.opened"]
    async with h.uow() as uow:
        assert (await uow.session.execute(sa.select(sa.func.count()).select_from(Ticket))).scalar_one() == 1


def test_circuit_breaker_opens_half_opens_and_closes():
    now = [0.0]
    b = CircuitBreaker(failures=2, reset_seconds=10, clock=lambda: now[0])
    b.failure()
    assert b.state == "closed"
    b.failure()
    assert b.state == "open"
    with pytest.raises(CircuitOpen):
        b.before_call()
    now[0] = 10.0
    assert b.state == "half_open"
    b.before_call()
    b.failure()  # the trial call failed
    assert b.state == "open"
    now[0] = 25.0
    b.before_call()
    b.success()
    assert b.state == "closed" and b.failures == 0


async def test_directory_client_retries_then_opens_the_breaker():
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    from escalation.routing import DirectoryClient, DirectoryUnavailable

    calls = {"n": 0}
    mode = {"answer": "500"}

    async def routing(request):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if mode["answer"] == "500":
            return JSONResponse({"detail": "boom"}, status_code=500)
        return PlainTextResponse("<html>proxy error page</html>")

    transport = httpx.ASGITransport(app=Starlette(routes=[Route("/routing", routing)]))
    client = DirectoryClient("http://directory", retries=2, breaker=CircuitBreaker(failures=2, reset_seconds=60),
                             transport=transport)
    try:
        with pytest.raises(DirectoryUnavailable):
            await client.routing("STREETS", "technology")
        assert calls["n"] == 3  # one call and two retries
        mode["answer"] = "garbage"
        with pytest.raises(DirectoryUnavailable, match="unreadable"):
            await client.routing("STREETS", "technology")
        assert calls["n"] == 6 and client.breaker.state == "open"
        with pytest.raises(CircuitOpen):
            await client.routing("STREETS", "technology")
        assert calls["n"] == 6  # an open breaker does not call
    finally:
        await client.aclose()
