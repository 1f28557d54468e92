"""Loads the demo city into a running stack, prints where to look, then waits.

Run by ``make run`` as one process of the Procfile: it waits for each service to be
ready, loads its demo data through the public APIs (idempotently: a restart loads
nothing twice), prints the URLs and demo keys, and then idles so the process runner
keeps the stack up until Ctrl-C. With ``CITYSTAT_DEMO=0`` (``make run EMPTY=1``) it loads
nothing: an empty city, with no directory, catalog or indicators until the city imports its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from citystat_common.demo import directory_rows, load

SERVICES = {
    "directory": int(os.environ.get("DIRECTORY_PORT", 8004)),
    "intake311": int(os.environ.get("INTAKE311_PORT", 8001)),
    "indicators": int(os.environ.get("INDICATORS_PORT", 8002)),
    "escalation": int(os.environ.get("ESCALATION_PORT", 8003)),
}


def base(service: str) -> str:
    return f"http://127.0.0.1:{SERVICES[service]}"


async def wait_ready(client: httpx.AsyncClient, service: str, timeout: float = 90) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            if (await client.get(f"{base(service)}/healthz")).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    return False


async def load_directory(client: httpx.AsyncClient, keys: dict[str, str]) -> str:
    total = (await client.get(f"{base('directory')}/departments")).json()["total"]
    if total:
        summary = f"directory already has {total} departments"
    else:
        r = await client.post(f"{base('directory')}/import", json={"rows": directory_rows()},
                              headers={"X-API-Key": keys["admin"]})
        r.raise_for_status()
        report = r.json()
        summary = f"loaded {report['departments']} departments, {report['people']} people, {report['assignments']} roles"
    added = await load_staff(client, keys)
    return f"{summary}; {added} staff added" if added else summary


def demo_staff() -> list[dict[str, Any]]:
    """The demo city's people who hold no senior-team role but work in the system every day (311
    call-takers, each department's 311 queue, the performance office's analyst): directory.json's
    "staff", each {"name", "title", "email", "phone", "department_code" (or null), "groups" (their
    identity-provider groups besides citystat-staff and citystat-dept-<CODE>), "notify"}."""
    return list(load("directory.json").get("staff", []))


async def load_staff(client: httpx.AsyncClient, keys: dict[str, str]) -> int:
    """Creates each demo staff member the directory does not have yet (found by email): a restart
    adds nothing, and a person already there is left as they are."""
    headers = {"X-API-Key": keys["admin"]}
    added = 0
    for person in demo_staff():
        found = await client.get(f"{base('directory')}/people", params={"email": person["email"]}, headers=headers)
        found.raise_for_status()
        if found.json()["total"]:
            continue
        body = {"name": person["name"], "title": person.get("title"), "email": person["email"],
                "phone": person.get("phone"), "department": person.get("department_code"),
                "notify": person.get("notify", "immediate")}
        r = await client.post(f"{base('directory')}/people", json=body,
                              headers={**headers, "Idempotency-Key": f"demo-staff-{person['email']}"})
        r.raise_for_status()
        added += 1
    return added


# Each service adds its loader here as it joins the stack: (service, coroutine).
LOADERS = [("directory", load_directory)]


def _extra_loaders() -> list:  # type: ignore[type-arg]
    loaders = list(LOADERS)
    for name in ("intake311", "indicators", "escalation"):
        try:
            module = __import__(f"{name}.demo", fromlist=["load_demo"])
        except ImportError:
            continue
        loaders.append((name, module.load_demo))
    return loaders


def demo_wanted() -> bool:
    return os.environ.get("CITYSTAT_DEMO", "1").strip().lower() not in ("0", "false", "no", "off")


async def main() -> None:
    keys = json.loads(Path("var/demo-keys.json").read_text())
    present = []
    demo = demo_wanted()
    async with httpx.AsyncClient(timeout=30) as client:
        for service, loader in _extra_loaders():
            if not await wait_ready(client, service, timeout=60 if service == "directory" else 20):
                print(f"[demo] {service} is not running; skipped", flush=True)
                continue
            present.append(service)
            if not demo:
                continue
            try:
                print(f"[demo] {service}: {await loader(client, keys)}", flush=True)
            except Exception as exc:  # keep the stack up; say what failed
                print(f"[demo] {service}: loading failed: {exc!r}", flush=True)
    lines = ["", "CityStat is running:" if demo else
             "CityStat is running, an empty city (CITYSTAT_DEMO=0): no directory, catalog or indicators yet; "
             "the README's 'How a city onboards' says how a city brings its own:"]
    for service in present:
        lines.append(f"  {service:<11} {base(service)}/docs   metrics {base(service)}/metrics")
    if "indicators" in present:
        lines.append(f"  dashboard   {base('indicators')}/dashboard")
    if "escalation" in present:
        lines.append(f"  board       {base('escalation')}/board")
    if "intake311" in present:
        lines.append(f"  Open311     {base('intake311')}/open311/v2/services.xml")
        lines.append(f"  311 pages   {base('intake311')}/staff/call (call-taker)   {base('intake311')}/staff/queue (department queue)")
    lines.append(f"  mail        {os.environ.get('MAIL_PAGE_URL', 'http://127.0.0.1:8026/')}  (every message the system sent; files in var/mail/)")
    if demo:  # the demo city's departments and people
        lines.append(f"  try: curl '{base('directory')}/routing?department=STREETS&function=technology'")
        lines += sign_in_lines()
    lines.append("Demo API keys (also in var/demo-keys.json), header X-API-Key:")
    lines += [f"  {role:<12} {key}" for role, key in keys.items()]
    lines.append("Ctrl-C stops everything.")
    print("\n".join(lines), flush=True)


def sign_in_lines() -> list[str]:
    """Who a newcomer can be: the pages send them to the local identity provider, where they choose
    one of these emails (any demo person's works)."""
    issuer = os.environ.get("IDENTITY_ISSUER")
    if not issuer:
        return []
    rows = {(r["department_code"], r["role"]): r for r in directory_rows()}
    people = [("STREETS stat partner", rows.get(("STREETS", "stat_partner"))),
              ("STREETS department head", rows.get(("STREETS", "department_head"))),
              ("deputy mayor, Operations", rows.get(("STREETS", "deputy_mayor")))]
    lines = [f"Sign in on any page: you are sent to the local identity provider ({issuer}); type or pick an email:"]
    lines += [f"  {label:<26} {row['person_name']:<22} {row['person_email']}" for label, row in people if row]
    staff = {p.get("department_code"): p for p in demo_staff() if "citystat-311_staff" in p.get("groups", [])}
    if staff.get("STREETS"):
        lines.append(f"  {'STREETS 311 queue':<26} {staff['STREETS']['name']:<22} {staff['STREETS']['email']}")
    return lines


def run() -> None:
    asyncio.run(main())
    # Idle until the process runner stops us: honcho ends the whole stack when any process exits.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.pause()


if __name__ == "__main__":
    run()
