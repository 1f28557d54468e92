"""Demo data for the fuzz runs, loaded through each service's public API, and the ids that exist
afterwards (so the fuzzer's path parameters get past the lookup and into the rules)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from citystat_common.demo import directory_rows
from citystat_common.testing import TEST_KEYS, auth

ADMIN = auth("admin")


def _ok(r: httpx.Response) -> Any:
    assert r.status_code < 300, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:500]}"
    return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else None


def directory(url: str) -> dict[str, list[Any]]:
    with httpx.Client(base_url=url, headers=ADMIN, timeout=30) as c:
        _ok(c.post("/import", json={"rows": directory_rows()}))
        clusters = [x["code"] for x in _ok(c.get("/clusters"))]
        people = [x["id"] for x in _ok(c.get("/people", params={"page_size": 5}))["items"]]
    return {"/clusters/{code}": clusters[:1], "/departments/{code}": ["STREETS"], "person_id": people[:1],
            "role": ["oit_partner"]}


def indicators(url: str) -> dict[str, list[Any]]:
    from indicators.demo import load_demo

    async def load() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            await load_demo(c, dict(TEST_KEYS))

    asyncio.run(load())
    with httpx.Client(base_url=url, headers=ADMIN, timeout=30) as c:
        observations = _ok(c.get("/indicators/STREETS.potholes_3d/observations"))
        items = observations if isinstance(observations, list) else observations.get("items", [])
        periods = [o["period"] for o in items][-1:]
    return {"code": ["STREETS.potholes_3d"], "/dashboard/departments/{code}": ["STREETS"], "period": periods}


def escalation(url: str) -> dict[str, list[Any]]:
    from escalation.demo import DEMO_FLAG
    from escalation.policy import default_policy

    soon = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    with httpx.Client(base_url=url, headers=ADMIN, timeout=30) as c:
        _ok(c.put("/policies/default", json={k: v for k, v in default_policy().items() if k != "name"}))
        ticket = _ok(c.post("/tickets", json=DEMO_FLAG))
        other = _ok(c.post("/tickets", json={**DEMO_FLAG, "title": "A second flag", "department_code": "STREETS"}))
        action = _ok(c.post(f"/tickets/{ticket['id']}/actions", json={"description": "Check the rota", "owner": "ops",
                                                                      "due_date": soon}))
        project = _ok(c.post(f"/tickets/{other['id']}/promote", json={"owner": "ops", "goal": "Hours restored",
                                                                      "due_date": soon}))
        milestone = _ok(c.post(f"/projects/{project['id']}/milestones", json={"title": "Rota agreed", "due_date": soon}))
        until = (datetime.now(UTC) + timedelta(days=3)).isoformat()
        mute = _ok(c.post("/mutes", json={"until": until, "reason": "audit week", "department_code": "PARKS"}))
    return {"ticket_id": [ticket["id"]], "action_id": [action["id"]], "project_id": [project["id"]],
            "milestone_id": [milestone["id"]], "mute_id": [mute["id"]], "name": ["default"]}


def intake311(url: str) -> dict[str, list[Any]]:
    with httpx.Client(base_url=url, timeout=30) as c:
        services = _ok(c.get("/services.json"))
        code = services[0]["service_code"]
        ids, tokens = [], []
        for n in range(2):
            form = {"service_code": code, "lat": "39.95", "long": "-75.16", "description": f"fuzz seed {n}",
                    "email": "a@example.org"}
            r = _ok(c.post("/open311/v2/requests.json", params={"api_key": TEST_KEYS["admin"]},
                           content=urlencode(form), headers={"Content-Type": "application/x-www-form-urlencoded"}))
            ids += [x["service_request_id"] for x in r if "service_request_id" in x]
            tokens += [x["token"] for x in r if "token" in x]
        if ids:
            _ok(c.post(f"/staff/requests/{ids[0]}/close", headers=ADMIN, json={"reason": "fixed", "text": "done"}))
        rows = _ok(c.get("/staff/requests", headers=ADMIN, params={"page_size": 5}))["items"]
        tokens += [x["token"] for x in rows if x.get("token")]
    return {"service_code": [code], "/admin/calendars/{code}": ["standard"], "service_request_id": ids[:1],
            "token": tokens[:1], "fmt": ["json"],
            # query and body fields too: the one jurisdiction, a key that may create requests
            "jurisdiction_id": ["city.example.gov"], "api_key": [TEST_KEYS["admin"]]}
