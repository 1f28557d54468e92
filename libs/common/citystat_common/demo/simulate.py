"""The demo city: drives a running CityStat the way a city would, faster than life.

- Residents file requests through the Open311 API across channels, at daily and weekly
  rhythms (busy weekday middays, quiet nights, lighter weekends).
- Departments close them at their own speed; one department (STREETS by default) slips
  past its service levels, so its "closed within service level" indicator turns red.
- Each simulated month, departments report their indicators: most on target, a few
  missing it, and one indicator never reported (it goes grey).
- Staff acknowledge tickets of some departments and not others, whose tickets climb the chain.

Time runs ``--speed`` times faster than life (default 1440: a simulated day per real minute,
a month in half an hour). Service levels of the simulated services are scaled the same way.
Run against ``make run``; for tickets to climb within minutes start the stack with
``make run-demo`` (escalation delays scaled down, daily 311 indicators).

    python -m citystat_common.demo.simulate [--speed 1440] [--minutes 30] [--rate 150] [--seed 311]
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from citystat_common.demo.loader import base, wait_ready

# (channel, the key that files it, share). A key's channel is fixed by the key (intake311 refuses
# another), so each channel is filed with its own key.
CHANNELS = [("phone", "call_center", 0.5), ("web", "web", 0.3), ("mobile_app", "mobile_app", 0.2)]
# (department, service code suffix, name, SLA days, share of volume, close speed: fraction of SLA used)
SERVICES = [
    ("STREETS", "POTHOLE", "Pothole", 3, 0.22, 2.2),          # slipping: closes at twice its SLA
    ("STREETS", "STREETLIGHT", "Street light out", 5, 0.10, 1.8),
    ("SANITATION", "MISSED_TRASH", "Missed trash collection", 1, 0.18, 0.5),
    ("SANITATION", "DUMPING", "Illegal dumping", 5, 0.10, 0.7),
    ("WATER", "WATER_LEAK", "Water leak", 2, 0.12, 0.6),
    ("LI", "VACANT_LOT", "Vacant lot overgrown", 10, 0.08, 0.8),
    ("PARKS", "TREE_DOWN", "Tree down", 2, 0.10, 0.9),
    ("HEALTH", "RODENTS", "Rodent sighting", 5, 0.10, 0.75),
]
RESPONSIVE = {"SANITATION", "WATER", "PARKS", "HEALTH"}  # staff acknowledge these departments' tickets
# (department, indicator code, name, unit, direction, target, typical value, function tag)
INDICATORS = [
    ("STREETS", "SIM.STREETS.paving_miles", "Miles of street resurfaced", "count", "up", 12, 8.5, "performance"),
    ("WATER", "SIM.WATER.main_breaks_fixed_48h", "Main breaks fixed within 48 h", "percentage", "up", 90, 93, "performance"),
    ("SANITATION", "SIM.SANITATION.tons_recycled", "Tons recycled", "count", "up", 5000, 4600, "performance"),
    ("FIRE", "SIM.FIRE.response_minutes", "Median fire response (minutes)", "duration", "down", 6.0, 5.8, "performance"),
    ("POLICE", "SIM.POLICE.overtime_cost", "Overtime spending", "currency", "down", 4_000_000, 4_700_000, "spending"),
    ("HEALTH", "SIM.HEALTH.inspections", "Food inspections completed", "count", "up", 900, 910, "performance"),
    ("LIBRARY", "SIM.LIBRARY.visits", "Library visits", "count", "up", 250_000, 262_000, "performance"),
    ("REVENUE", "SIM.REVENUE.collection_rate", "Collection rate", "percentage", "up", 95, 94.2, "performance"),
    ("DHS", "SIM.DHS.staff_vacancy_rate", "Staff vacancy rate", "percentage", "down", 8, 8.2, "staffing"),
    ("LI", "SIM.LI.permit_system_uptime", "Permit system uptime", "percentage", "up", 99.5, 99.6, "technology"),
]
NEVER_REPORTED = "SIM.LIBRARY.visits"  # this department forgets: its indicator goes grey


@dataclass(order=True)
class Due:
    at: float
    action: str = field(compare=False)
    request_id: str = field(compare=False)
    dept: str = field(compare=False)
    feedback_token: str = field(default="", compare=False)  # the reporter's, returned once at POST


class City:
    def __init__(self, args: argparse.Namespace, keys: dict[str, str]):
        self.args = args
        self.keys = keys
        self.rng = random.Random(args.seed)
        self.speed = args.speed
        self.sim_start = datetime.now(UTC) - timedelta(days=args.history_days)
        self.loop_start = 0.0
        self.queue: list[Due] = []
        self.stats = {"requests": 0, "closed": 0, "feedback": 0, "observations": 0, "acknowledged": 0, "errors": 0}
        self.reported_months: set[str] = set()
        self.acked: set[str] = set()

    def headers(self, role: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[role]}

    def sim_now(self, loop: asyncio.AbstractEventLoop) -> datetime:
        return self.sim_start + timedelta(seconds=(loop.time() - self.loop_start) * self.speed)

    def rate_per_sim_hour(self, t: datetime) -> float:
        """Residents' rhythm: busy weekday middays, quiet nights, lighter weekends."""
        hour = t.hour + t.minute / 60
        daily = 0.15 + 0.85 * math.exp(-((hour - 12.5) ** 2) / 18)
        weekly = 0.6 if t.weekday() >= 5 else 1.0
        return self.args.rate / 24 * daily * weekly * 2.1

    async def setup(self, c: dict[str, httpx.AsyncClient]) -> None:
        for dept, suffix, name, days, _, _ in SERVICES:
            sla_hours = days * 24 / self.speed  # a simulated day is 24/speed real hours
            r = await c["intake311"].post("/admin/services", headers=self.headers("admin"), json={
                "service_code": f"SIM_{suffix}", "service_name": f"{name} (demo)", "group": dept.title(),
                "department_code": dept, "keywords": ["demo"],
                "service_level": {"amount": round(sla_hours, 6), "unit": "calendar_hours"},
            })
            if r.status_code not in (201, 409):
                print(f"[sim] could not create SIM_{suffix}: {r.status_code} {r.text[:200]}")
        for dept, code, name, unit, direction, target, _, tag in INDICATORS:
            r = await c["indicators"].post("/indicators", headers=self.headers("admin"), json={
                "code": code, "name": name, "department_code": dept, "unit": unit, "kind": "outcome",
                "direction": direction, "frequency": "monthly", "function_tag": tag, "critical": tag != "performance",
            })
            if r.status_code not in (201, 409):
                print(f"[sim] could not create {code}: {r.status_code} {r.text[:200]}")
            months = [self._month(self.sim_start + timedelta(days=30 * i)) for i in range(self.args.history_days // 30 + 2)]
            await c["indicators"].put(f"/indicators/{code}/targets", headers=self.headers("admin"),
                                      json={"targets": [{"period": m, "value": target} for m in months]})

    @staticmethod
    def _month(t: datetime) -> str:
        return f"{t.year:04d}-{t.month:02d}"

    async def post_request(self, c: dict[str, httpx.AsyncClient], now: float, t: datetime) -> None:
        weights = [s[4] for s in SERVICES]
        dept, suffix, _, days, _, speed = self.rng.choices(SERVICES, weights=weights)[0]
        channel, role, _ = self.rng.choices(CHANNELS, weights=[w for *_, w in CHANNELS])[0]
        form = {
            "api_key": self.keys[role], "service_code": f"SIM_{suffix}", "channel": channel,
            "lat": f"{39.95 + self.rng.uniform(-0.08, 0.08):.5f}", "long": f"{-75.16 + self.rng.uniform(-0.08, 0.08):.5f}",
            "description": f"{suffix.replace('_', ' ').lower()} reported on simulated {t:%a %d %b %H:%M}",
        }
        r = await c["intake311"].post("/open311/v2/requests.json", data=form)
        if r.status_code not in (200, 201):
            self.stats["errors"] += 1
            return
        self.stats["requests"] += 1
        rid = r.json()[0].get("service_request_id")
        if not rid:
            return  # a batch service: a token, closed later by staff elsewhere
        sim_days = max(0.05, self.rng.gammavariate(4, days * speed / 4))
        heapq.heappush(self.queue, Due(now + sim_days * 86400 / self.speed, "close", rid, dept,
                                       r.json()[0].get("feedback_token", "")))
        if self.rng.random() < 0.5:
            heapq.heappush(self.queue, Due(now + sim_days * 0.3 * 86400 / self.speed, "acknowledge", rid, dept))

    async def due_actions(self, c: dict[str, httpx.AsyncClient], now: float) -> None:
        while self.queue and self.queue[0].at <= now:
            due = heapq.heappop(self.queue)
            path = f"/staff/requests/{due.request_id}/{due.action}"
            body = {"reason": "fixed", "text": "crew completed the work"} if due.action == "close" else {}
            r = await c["intake311"].post(path, json=body, headers=self.headers("admin"))
            if r.status_code != 200:
                continue
            if due.action == "close":
                self.stats["closed"] += 1
                if self.rng.random() < 0.3:
                    slow = dict((s[0], s[5]) for s in SERVICES).get(due.dept, 1) > 1.5
                    score = self.rng.choice([1, 2, 2, 3] if slow else [3, 4, 5, 5])
                    fb = await c["intake311"].post(f"/requests/{due.request_id}/feedback", headers=self.headers("web"),
                                                   json={"score": score, "comment": "simulated resident",
                                                         "feedback_token": due.feedback_token})
                    self.stats["feedback"] += fb.status_code == 201

    async def report_month(self, c: dict[str, httpx.AsyncClient], month: str, months_done: int) -> None:
        for _dept, code, _, _, _direction, _target, typical, _ in INDICATORS:
            if code == NEVER_REPORTED and months_done >= 1:
                continue  # reported once, then forgotten: the period passes without data
            drift = self.rng.gauss(0, 0.02) * typical
            r = await c["indicators"].post(f"/indicators/{code}/observations", headers=self.headers("admin"),
                                           json={"period": month, "value": round(max(0, typical + drift), 2)})
            self.stats["observations"] += r.status_code in (200, 201)

    async def staff_round(self, c: dict[str, httpx.AsyncClient]) -> None:
        r = await c["escalation"].get("/tickets", params={"open": "true", "page_size": 200})
        if r.status_code != 200:
            return
        for t in r.json()["items"]:
            if t["department_code"] in RESPONSIVE and t["status"] == "open" and t["id"] not in self.acked:
                a = await c["escalation"].post(f"/tickets/{t['id']}/acknowledge", headers=self.headers("ops"),
                                               json={"note": "on it (simulated staff)"})
                if a.status_code == 200:
                    self.acked.add(t["id"])
                    self.stats["acknowledged"] += 1

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        clients = {s: httpx.AsyncClient(base_url=base(s), timeout=30) for s in ("intake311", "indicators", "escalation")}
        try:
            # The stack may still be starting (make run-demo starts everything at once): wait for it
            # instead of failing, which would stop every process of the run.
            async with httpx.AsyncClient(timeout=5) as probe:
                for service in clients:
                    if not await wait_ready(probe, service, timeout=180):
                        raise SystemExit(f"simulator: {service} did not start within 3 minutes")
            await self.setup(clients)
            self.loop_start = loop.time()
            end = self.loop_start + self.args.minutes * 60
            next_staff = next_print = self.loop_start
            months_done = 0
            while loop.time() < end:
                now = loop.time()
                t = self.sim_now(loop)
                # arrivals in the next tick (0.25 s real) follow the rhythm of the simulated hour
                expected = self.rate_per_sim_hour(t) * 0.25 * self.speed / 3600
                for _ in range(self._poisson(expected)):
                    await self.post_request(clients, now, t)
                await self.due_actions(clients, now)
                # departments report a month once it is over (and the month before the start at once)
                previous = self._month(t.replace(day=1) - timedelta(days=1))
                if previous not in self.reported_months:
                    self.reported_months.add(previous)
                    await self.report_month(clients, previous, months_done)
                    months_done += 1
                if now >= next_staff:
                    next_staff = now + 10
                    await self.staff_round(clients)
                if now >= next_print:
                    next_print = now + 15
                    print(f"[sim] {t:%Y-%m-%d %H:%M} (x{self.speed:g}) " + " ".join(f"{k}={v}" for k, v in self.stats.items()),
                          flush=True)
                await asyncio.sleep(0.25)
        finally:
            for cl in clients.values():
                await cl.aclose()

    def _poisson(self, lam: float) -> int:
        n, p, limit = 0, 1.0, math.exp(-lam)
        while True:
            p *= self.rng.random()
            if p <= limit:
                return n
            n += 1


def main() -> None:
    parser = argparse.ArgumentParser(description="Drive the running CityStat like a city would, faster than life")
    parser.add_argument("--speed", type=float, default=1440, help="simulated seconds per real second (1440: a day a minute)")
    parser.add_argument("--minutes", type=float, default=30, help="how long to run, in real minutes")
    parser.add_argument("--rate", type=float, default=150, help="311 requests per simulated day")
    parser.add_argument("--history-days", type=int, default=90, help="the simulated clock starts this many days ago")
    parser.add_argument("--seed", type=int, default=311)
    parser.add_argument("--keys", default="var/demo-keys.json")
    args = parser.parse_args()
    keys = json.loads(Path(args.keys).read_text())
    print(f"[sim] a simulated day every {86400 / args.speed:.0f} s; dashboard {base('indicators')}/dashboard, "
          f"board {base('escalation')}/board", flush=True)
    asyncio.run(City(args, keys).run())


if __name__ == "__main__":
    main()

