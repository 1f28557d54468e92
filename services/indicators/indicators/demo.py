"""Demo indicators for the demo city, loaded through the public API (idempotent).

Monthly history per indicator back to the fiscal year three years ago, ending with the last complete month, shaped so the
dashboard shows every colour: red (a breach event each), yellow, green, one overridden by
staff judgement, and one grey (its latest month was never reported).
"""

from __future__ import annotations

import math
import os
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx


def _month(k: int, today: date) -> str:
    idx = today.year * 12 + today.month - 1 - k
    return f"{idx // 12}-{idx % 12 + 1:02d}"


# code, department, name, unit, kind, direction, function, critical, target, final value, extra
DEMO: list[dict[str, Any]] = [
    dict(code="STREETS.potholes_3d", dept="STREETS", name="Potholes repaired within 3 days", unit="percentage",
         kind="quality", direction="up", tag="performance", critical=True, target=85, final=68),
    dict(code="STREETS.lights_5d", dept="STREETS", name="Street lights repaired within 5 days", unit="percentage",
         kind="quality", direction="up", tag="technology", target=90, final=91.5),
    dict(code="WATER.main_breaks_24h", dept="WATER", name="Main breaks repaired within 24 hours", unit="percentage",
         kind="outcome", direction="up", tag="performance", target=90, final=83.5),
    dict(code="WATER.quality", dept="WATER", name="Drinking water samples meeting standards", unit="percentage",
         kind="outcome", direction="up", tag="performance", critical=True, target=99.5, final=100),
    dict(code="SANITATION.missed_per_10k", dept="SANITATION", name="Missed collections per 10,000 households",
         unit="count", kind="quality", direction="down", tag="performance", target=5, final=7.2),
    dict(code="SANITATION.diversion", dept="SANITATION", name="Recycling diversion rate", unit="percentage",
         kind="outcome", direction="up", tag="performance", target=25, final=23.5),
    dict(code="SANITATION.spending", dept="SANITATION", name="Collection spending", unit="currency", kind="input",
         direction="down", tag="spending", target=2_400_000, final=2_350_000, additive=True,
         linked_outcome_code="SANITATION.diversion"),
    dict(code="SANITATION.tons", dept="SANITATION", name="Tons collected", unit="count", kind="output",
         direction="up", tag="performance", target=25_000, final=25_400, additive=True),
    dict(code="SANITATION.cost_per_ton", dept="SANITATION", name="Collection cost per ton", unit="currency",
         kind="efficiency", direction="down", tag="spending", target=95, formula=("SANITATION.spending",
                                                                                   "SANITATION.tons")),
    dict(code="LI.permit_days", dept="LI", name="Median days to issue a building permit", unit="duration",
         kind="efficiency", direction="down", tag="performance", target=10, final=9.2),
    dict(code="POLICE.response_min", dept="POLICE", name="Average priority-1 response time (minutes)",
         unit="duration", kind="outcome", direction="down", tag="performance", critical=True, target=7, final=8.1),
    dict(code="FIRE.response_520", dept="FIRE", name="Structural fires reached within 5:20", unit="percentage",
         kind="outcome", direction="up", tag="performance", critical=True, target=90, final=91),
    dict(code="PARKS.attendance", dept="PARKS", name="Recreation program attendance", unit="count", kind="output",
         direction="up", tag="performance", target=None, final=48_000, basis="same_period_last_year", additive=True),
    dict(code="HEALTH.clinic_wait", dept="HEALTH", name="Days to next clinic appointment", unit="duration",
         kind="quality", direction="down", tag="customer_service", target=None, final=6.0, basis="history"),
    dict(code="DHS.placement_24h", dept="DHS", name="Families placed within 24 hours", unit="percentage",
         kind="outcome", direction="up", tag="staffing", critical=True, target=95, final=82,
         override=("yellow", "New intake centre opened on the 1st; weekly figures show recovery. Reviewed at Stat.")),
    dict(code="LIBRARY.visits", dept="LIBRARY", name="Library visits", unit="count", kind="output", direction="up",
         tag="performance", target=150_000, final=152_000, stale=3, additive=True),
    dict(code="REVENUE.collection_rate", dept="REVENUE", name="Current-year tax collection rate", unit="percentage",
         kind="outcome", direction="up", tag="spending", target=97, final=96.6),
    dict(code="REVENUE.uptime", dept="REVENUE", name="Online payment system uptime", unit="percentage",
         kind="quality", direction="up", tag="technology", target=99.9, final=99.95),
    dict(code="CONTACT311.answered_60s", dept="CONTACT311", name="Calls answered within 60 seconds",
         unit="percentage", kind="quality", direction="up", tag="customer_service", critical=True, target=80, final=70),
    dict(code="CONTACT311.vacancy", dept="CONTACT311", name="Agent vacancy rate", unit="percentage", kind="input",
         direction="down", tag="staffing", target=8, final=8.45),
]


def _history(d: dict[str, Any], today: date, rng: random.Random) -> list[tuple[str, float]]:
    """Twelve months ending with the last complete one (or ``stale`` months ago): a smooth path
    from the good side of the target to the final value, so the final status is the one meant;
    before them two earlier years near that start, so every figure has a year to date to set
    against last year's and the report has whole fiscal years of actuals."""
    months = 12
    end_k = d.get("stale", 1)
    final = float(d["final"])
    target = d.get("target")
    start = (target * (1.02 if d["direction"] == "up" else 0.98)) if target else final
    out = []
    for i in range(months):
        k = end_k + months - 1 - i
        frac = i / (months - 1)
        v = start + (final - start) * frac
        if i < months - 1:
            v *= 1 + rng.uniform(-0.004, 0.004)
        if d.get("basis") == "same_period_last_year":
            v = final * (0.9 + 0.1 * frac)  # this year's path; last year's is added below
        if d.get("basis") == "history":
            v = final * (1 + 0.06 * math.sin(i))
        if d["unit"] == "percentage":
            v = min(100.0, max(0.0, v))
        if d["unit"] == "count":
            v = round(v, 1) if v < 100 else round(v)
        out.append((_month(k, today), round(v, 2)))
    out[-1] = (out[-1][0], final)
    if d.get("basis") == "same_period_last_year":  # last year: slightly lower, so this year is green
        out = [(_month(k, today), round(v * 0.95, 0)) for (_, v), k in zip(out, range(end_k + 23, end_k + 11, -1),
                                                                            strict=True)] + out
        return out
    return _earlier_years(d, out[0][1], end_k + months, rng, today) + out


def _oldest_k(today: date) -> int:
    """How many months ago the fiscal year three years before the current one began (July), so the
    report's three years of actuals are whole years."""
    fy_start_year = today.year if today.month >= 7 else today.year - 1
    return (today.year * 12 + today.month - 1) - ((fy_start_year - 3) * 12 + 6)


def _earlier_years(d: dict[str, Any], start: float, first_k: int, rng: random.Random,
                   today: date) -> list[tuple[str, float]]:
    """The months before the recent path, back to the start of the fiscal year three years ago: near
    the path's start, within a few percent, so the earlier years read as ordinary (and a count
    indicator sums to a whole year comparable with this one)."""
    out = []
    for k in range(_oldest_k(today), first_k - 1, -1):
        v = start * (1 + rng.uniform(-0.03, 0.03))
        if d["unit"] == "percentage":
            v = min(100.0, max(0.0, v))
        if d["unit"] == "count":
            v = round(v, 1) if v < 100 else round(v)
        out.append((_month(k, today), round(v, 2)))
    return out


def _spending_path(today: date) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    spend: list[tuple[str, float]] = []
    tons: list[tuple[str, float]] = []
    for k in range(_oldest_k(today), 12, -1):  # earlier years at about last year's cost per ton (~92)
        spend.append((_month(k, today), 2_250_000 + 1_000 * (k % 5)))
        tons.append((_month(k, today), 24_500 + 40 * (k % 3)))
    for i in range(12):
        k = 12 - i
        spend.append((_month(k, today), 2_300_000 + 5_000 * i))
        tons.append((_month(k, today), 25_000 - 20 * i if i < 11 else 23_300))  # cost per ton ends ~101: yellow
    return spend, tons


async def load_demo(client: httpx.AsyncClient, keys: dict[str, str]) -> str:
    base = "" if str(client.base_url) not in ("", "/") else f"http://127.0.0.1:{os.environ.get('INDICATORS_PORT', 8002)}"
    h = {"X-API-Key": keys.get("admin") or keys.get("analyst", "")}
    tz = ZoneInfo(os.environ.get("CITY_TIMEZONE", "America/New_York"))
    today = datetime.now(UTC).astimezone(tz).date()
    rng = random.Random(2026)
    created = 0
    spend, tons = _spending_path(today)
    for d in DEMO:
        r = await client.get(f"{base}/indicators/{d['code']}")
        if r.status_code == 404:
            body: dict[str, Any] = {
                "code": d["code"], "name": d["name"], "department_code": d["dept"], "unit": d["unit"], "kind": d["kind"],
                "direction": d["direction"], "frequency": "monthly", "function_tag": d["tag"],
                "critical": d.get("critical", False), "additive": d.get("additive", False),
                "description": f"{d['name']} (demo indicator).", "owner": f"{d['dept']} performance lead",
                "data_source": "demo", "basis": d.get("basis", "target"),
            }
            if d.get("linked_outcome_code"):
                body["linked_outcome_code"] = d["linked_outcome_code"]
            if d.get("formula"):
                body["formula"] = {"op": "ratio", "numerator": d["formula"][0], "denominator": d["formula"][1]}
            r = await client.post(f"{base}/indicators", json=body, headers=h)
            if r.status_code != 201:
                raise RuntimeError(f"creating {d['code']}: {r.status_code} {r.text[:300]}")
            created += 1
        elif r.status_code != 200:
            raise RuntimeError(f"reading {d['code']}: {r.status_code} {r.text[:300]}")
        if d.get("target") is not None:
            r = await client.put(f"{base}/indicators/{d['code']}/targets", headers=h,
                                 json={"targets": [{"period": _month(36, today), "value": d["target"],
                                                   "applies": "onward"}]})
            r.raise_for_status()
        if d.get("formula"):
            continue
        if d["code"] == "SANITATION.spending":
            series = spend
        elif d["code"] == "SANITATION.tons":
            series = tons
        else:
            series = _history(d, today, rng)
        rows = [{"indicator_code": d["code"], "period": p, "value": v} for p, v in series]
        r = await client.post(f"{base}/observations/bulk", json=rows, headers=h)
        if r.status_code != 200:
            raise RuntimeError(f"observations of {d['code']}: {r.status_code} {r.text[:300]}")
    for d in DEMO:
        if d.get("override"):
            cur = (await client.get(f"{base}/indicators/{d['code']}")).json()
            if not cur.get("overridden"):
                status, reason = d["override"]
                expires = (datetime.now(UTC) + timedelta(days=45)).isoformat()
                r = await client.put(f"{base}/indicators/{d['code']}/override", headers=h,
                                     json={"status": status, "reason": reason, "expires_at": expires})
                r.raise_for_status()
    await _chapters(client, base, h, today)
    listed = (await client.get(f"{base}/indicators", params={"derived": "false", "page_size": 500})).json()["items"]
    counts: dict[str, int] = {}
    for i in listed:
        counts[i["status"]] = counts.get(i["status"], 0) + 1
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("red", "yellow", "green", "grey"))
    return f"{len(DEMO)} demo indicators ({created} new): {summary}"


# What two departments say they do, with their services and goals, and their account of the last
# month: so the printable report reads as a chapter of the Mayor's Management Report from the start.
CHAPTERS: dict[str, dict[str, Any]] = {
    "STREETS": {
        "what_we_do": "The Streets Department keeps the city's 2,500 miles of streets safe and passable: it "
                      "repairs potholes and street lights, plows snow and answers residents' 311 reports.",
        "services": [
            {"service": "Maintain the city's streets", "goals": [
                {"goal": "Repair potholes promptly", "indicators": ["STREETS.potholes_3d"]},
                {"goal": "Keep streets lit at night", "indicators": ["STREETS.lights_5d"]}]},
        ],
        "narrative": "Pothole repairs within three days fell to 68% as two crews were moved to the "
                     "repaving season; both return this month and a night shift starts on the worst "
                     "corridors. Street lights stayed above target.",
    },
    "SANITATION": {
        "what_we_do": "The Sanitation Department collects refuse and recycling from 540,000 households and "
                      "keeps the city's streets and lots clean.",
        "services": [
            {"service": "Collect refuse and recycling", "goals": [
                {"goal": "Collect on the scheduled day",
                 "indicators": ["SANITATION.missed_per_10k", "SANITATION.tons"]},
                {"goal": "Divert waste from landfill", "indicators": ["SANITATION.diversion"]}]},
            {"service": "Spend within budget", "goals": [
                {"goal": "Hold the cost per ton",
                 "indicators": ["SANITATION.spending", "SANITATION.cost_per_ton"]}]},
        ],
        "narrative": "Missed collections rose with the route changes of the autumn; routes were rebalanced "
                     "in the last week of the month and the figure is expected back under target.",
    },
}


async def _chapters(client: httpx.AsyncClient, base: str, h: dict[str, str], today: date) -> None:
    """The demo chapters (idempotent: a statement is only written where none is, a narrative only for a
    month that has none). Only indicators the demo holds are named."""
    known = {d["code"] for d in DEMO}
    last_month = _month(1, today)
    for dept, ch in CHAPTERS.items():
        if (await client.get(f"{base}/departments/{dept}/statement", headers=h)).status_code == 404:
            services = [{"service": sv["service"], "goals": [
                {"goal": g["goal"], "indicators": [c for c in g["indicators"] if c in known]} for g in sv["goals"]]}
                for sv in ch["services"]]
            r = await client.put(f"{base}/departments/{dept}/statement", headers=h,
                                 json={"what_we_do": ch["what_we_do"], "services": services})
            r.raise_for_status()
        r = await client.get(f"{base}/departments/{dept}/narratives", params={"period": last_month}, headers=h)
        if r.status_code == 200 and not r.json()["items"]:
            r = await client.post(f"{base}/departments/{dept}/narratives", headers=h,
                                  json={"period": last_month, "text": ch["narrative"]})
            r.raise_for_status()
