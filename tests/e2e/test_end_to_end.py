"""From a resident's 311 request to an escalation ticket, across four service processes and a
real broker: a burst of requests runs past its service level, the department's derived
"closed within service level" indicator turns red, `indicator.breached` is published, a ticket
opens for the department's Customer Service Officer by name, its timeline links back to the
indicator; then requests closed on time bring the indicator back (the recovery path).
One correlation id follows the chain through every event and appears in all four services' logs."""

import asyncio
import re
import uuid

import httpx

from citystat_common.demo import directory_rows
from citystat_common.stack import ALL_SERVICES
from citystat_common.testing import TEST_KEYS, auth, collect_events, eventually, midday_timezone

DEPT = "STREETS"
CODE = f"311.{DEPT}.closed_within_sla"
SERVICE = "E2E_POTHOLE"
SLA_HOURS = 0.004  # 14.4 s: long enough to close requests on time, short enough to miss it in a test

ENV = {
    "INDICATORS_DERIVED_FREQUENCY": "daily",
    # only events drive evaluation here, so the chain from the HTTP request is unbroken
    "INDICATORS_DERIVED_REFRESH_SECONDS": "3600",
    "ESCALATION_SCHEDULER_INTERVAL": "1",
    "INTAKE311_RATE_LIMIT_PER_MINUTE": "0",
    # the daily figure must not roll over to a new day between the burst and its breach
    "CITY_TIMEZONE": midday_timezone(),
}


def person(role):
    return next(r["person_name"] for r in directory_rows() if r["department_code"] == DEPT and r["role"] == role)


async def post_request(client, n, cid):
    form = {
        "api_key": TEST_KEYS["call_center"], "service_code": SERVICE,
        # far apart, so duplicate detection links none of them
        "lat": f"{39.90 + n * 0.01:.5f}", "long": f"{-75.20 + n * 0.01:.5f}",
        "description": f"Pothole number {n}",
    }
    r = await client.post("/open311/v2/requests.json", data=form, headers={"X-Correlation-ID": cid})
    assert r.status_code in (200, 201), r.text
    return r.json()[0]["service_request_id"]


async def test_from_311_request_to_ticket_and_back(stack_factory, broker):
    stack = stack_factory(list(ALL_SERVICES), extra_env=ENV)
    urls = {s: stack.url(s) for s in ALL_SERVICES}
    clients = {s: httpx.AsyncClient(base_url=u, timeout=30) for s, u in urls.items()}
    intake, indicators, escalation, directory = (clients[s] for s in ("intake311", "indicators", "escalation", "directory"))
    try:
        r = await directory.post("/import", json={"rows": directory_rows()}, headers=auth("directory"))
        assert r.status_code == 200, r.text
        r = await intake.post("/admin/services", headers=auth("admin"), json={
            "service_code": SERVICE, "service_name": "Pothole (end-to-end)", "group": "Streets",
            "department_code": DEPT, "service_level": {"amount": SLA_HOURS, "unit": "calendar_hours"},
        })
        assert r.status_code == 201, r.text

        # the escalation service must know the senior teams before the breach (directory.changes)
        async def knows_streets():
            r = await escalation.get("/routing-copy")
            return r.status_code == 200 and DEPT in r.text
        await eventually(knows_streets, timeout=60)

        burst_cid = f"burst-{uuid.uuid4().hex[:8]}"
        burst = [await post_request(intake, n, burst_cid) for n in range(6)]
        await asyncio.sleep(SLA_HOURS * 3600 + 2)  # the burst runs past its service level

        chain_cid = f"chain-{uuid.uuid4().hex[:8]}"
        await post_request(intake, 100, chain_cid)  # the next request's event re-derives the indicator

        async def red():
            r = await indicators.get(f"/indicators/{CODE}")
            return r.json() if r.status_code == 200 and r.json().get("status") == "red" else None
        indicator = await eventually(red, timeout=60)

        events = await collect_events(
            broker.bootstrap, "indicators.status", timeout=60,
            until=lambda evs: any(e.type == "indicators.indicator.breached" and e.data["indicator_code"] == CODE for e in evs),
        )
        breach = next(e for e in events if e.type == "indicators.indicator.breached" and e.data["indicator_code"] == CODE)
        assert breach.data["department_code"] == DEPT and breach.data["function_tag"] == "customer_service"
        assert breach.correlation_id == chain_cid

        async def ticket():
            r = await escalation.get("/tickets", params={"indicator_id": indicator["id"]})
            items = r.json()["items"] if r.status_code == 200 else []
            return items[0] if items else None
        t = await eventually(ticket, timeout=60)
        assert t["assignee"]["name"] == person("customer_service_officer")
        assert t["assignee_role"] == "customer_service_officer" and t["source"] == "threshold"
        assert t["indicator_code"] == CODE and t["episode_id"] == breach.data["episode_id"]
        detail = (await escalation.get(f"/tickets/{t['id']}")).json()
        assert any(indicator["id"] in str(entry) or CODE in str(entry) for entry in detail["timeline"])

        opened = await collect_events(
            broker.bootstrap, "escalation.tickets", timeout=60,
            until=lambda evs: any(e.type == "escalation.ticket.opened" and e.subject == t["id"] for e in evs),
        )
        assert next(e for e in opened if e.subject == t["id"]).correlation_id == chain_cid

        # who is on it: the indicators dashboard names the ticket's holder on the red tile, from its
        # copy fed by escalation.ticket.updated (it never reads escalation's tables), and links its page
        async def tile_names_holder():
            board = (await indicators.get("/dashboard", params={"department": DEPT, "source": "311"})).text
            m = re.search(rf'<li><a class="tile[^"]*"[^>]*data-code="{re.escape(CODE)}".*?</li>', board, re.S)
            return m.group(0) if m and 'class="ticket' in m.group(0) else None
        tile = await eventually(tile_names_holder, timeout=60)
        assert t["assignee"]["name"] in tile and "level 0 (customer service officer)" in tile
        assert f'href="{urls["escalation"]}/board/tickets/{t["id"]}"' in tile
        # the chain's id is in the logs of every service on its path (the directory is not on it:
        # escalation routes from its copy of the senior team)
        for service in ("intake311", "indicators", "escalation"):
            assert chain_cid in stack.logs(service), f"{chain_cid} not in {service}'s logs"

        # Recovery: the late requests are closed, and a run of new ones is closed on time.
        for rid in burst:
            r = await intake.post(f"/staff/requests/{rid}/close", json={"reason": "fixed"}, headers=auth("admin"))
            assert r.status_code == 200, r.text
        recovery_cid = f"recovery-{uuid.uuid4().hex[:8]}"
        for n in range(200, 260):
            rid = await post_request(intake, n, recovery_cid)
            r = await intake.post(f"/staff/requests/{rid}/close", json={"reason": "fixed"}, headers=auth("admin"))
            assert r.status_code == 200, r.text

        async def recovered():
            r = await indicators.get(f"/indicators/{CODE}")
            return r.json()["status"] in ("green", "yellow")
        await eventually(recovered, timeout=60)
        await collect_events(
            broker.bootstrap, "indicators.status", timeout=60,
            until=lambda evs: any(e.type == "indicators.indicator.recovered" and e.data["indicator_code"] == CODE for e in evs),
        )

        async def ticket_noted():
            d = (await escalation.get(f"/tickets/{t['id']}")).json()
            return d if (d["status"] == "resolved" or d["review_pending"]) else None
        after = await eventually(ticket_noted, timeout=60)
        assert any("recover" in str(entry).lower() for entry in after["timeline"])
    finally:
        for c in clients.values():
            await c.aclose()
