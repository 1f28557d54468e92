"""Demo data through the public API (idempotent): the default escalation policy and one manual
flag, so the board is not empty before the indicators turn anything red; and every open ticket's
snapshot published again, so the dashboard names who holds tickets opened by an earlier run."""

from __future__ import annotations

import os
from typing import Any

import httpx

from escalation.policy import default_policy

DEMO_FLAG: dict[str, Any] = {
    "department_code": "LIBRARY",
    "title": "Branch opening hours cut without notice",
    "reason": "Residents report branches closed during posted hours; the visits indicator is green "
              "because it counts only open days: the data does not speak for itself.",
    "severity": 2,
    "function_tag": "customer_service",
}


def base() -> str:
    return f"http://127.0.0.1:{int(os.environ.get('ESCALATION_PORT', 8003))}"


async def load_demo(client: httpx.AsyncClient, keys: dict[str, str]) -> str:
    headers = {"X-API-Key": keys.get("ops") or keys["admin"]}
    url = base()
    parts = []
    r = await client.get(f"{url}/policies/default")
    if r.status_code == 404:
        doc = {k: v for k, v in default_policy().items() if k != "name"}
        r = await client.put(f"{url}/policies/default", json=doc, headers=headers)
        r.raise_for_status()
        parts.append("default policy created")
    else:
        r.raise_for_status()
        parts.append("default policy present")
    existing = await client.get(f"{url}/tickets", params={"source": "manual", "department": DEMO_FLAG["department_code"]})
    existing.raise_for_status()
    if existing.json()["total"]:
        parts.append("demo flag present")
    else:
        r = await client.post(f"{url}/tickets", json=DEMO_FLAG, headers={**headers, "Idempotency-Key": "demo-flag-library-1"})
        r.raise_for_status()
        t = r.json()
        who = t["assignee"]["name"] if t["assignee"] else "the managing director's queue"
        parts.append(f"manual flag opened for {t['department_code']} (assigned to {who})")
    # tickets opened before escalation published snapshots (an older var/): the dashboard's tiles
    # name their holders too; the demo's new breaches publish theirs as they open
    r = await client.post(f"{url}/ticket-snapshots", headers=headers)
    r.raise_for_status()
    parts.append(f"{r.json()['published']} open ticket snapshots published for the dashboard")
    return "; ".join(parts) + f"; board at {url}/board"
