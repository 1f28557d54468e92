"""Reports: open tickets by department, cluster, level and age; time to acknowledge and to
resolve per department; escalations per month. Rows of plain dicts, served as JSON or CSV."""

from __future__ import annotations

import csv
import io
import statistics
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from citystat_common.uow import UnitOfWork
from escalation.models import OPEN_STATUSES, Escalation, Ticket, TimelineEntry

AGE_BUCKETS = ((1, "0-1d"), (3, "1-3d"), (7, "3-7d"), (30, "7-30d"))
GROUPS = ("department", "cluster", "level", "age")


def age_bucket(opened_at: datetime, now: datetime) -> str:
    days = (now - opened_at).total_seconds() / 86400
    for limit, label in AGE_BUCKETS:
        if days < limit:
            return label
    return "30d+"


async def open_tickets(uow: UnitOfWork, *, now: datetime, group_by: list[str]) -> list[dict[str, Any]]:
    rows = (await uow.session.execute(
        sa.select(Ticket.department_code, Ticket.cluster_code, Ticket.level, Ticket.opened_at, Ticket.severity)
        .where(Ticket.status.in_(OPEN_STATUSES))
    )).all()
    counts: dict[tuple[Any, ...], dict[str, Any]] = {}
    for dept, cluster, level, opened, sev in rows:
        values = {"department": dept, "cluster": cluster or "", "level": level, "age": age_bucket(opened, now)}
        key = tuple(values[g] for g in group_by)
        entry = counts.setdefault(key, {**{g: values[g] for g in group_by}, "open": 0, "critical": 0, "oldest_hours": 0.0})
        entry["open"] += 1
        entry["critical"] += sev == 1
        entry["oldest_hours"] = max(entry["oldest_hours"], round((now - opened).total_seconds() / 3600, 1))
    return [counts[k] for k in sorted(counts, key=lambda k: tuple(str(x) for x in k))]


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return round(statistics.mean(values), 2), round(statistics.median(values), 2)


async def response_times(uow: UnitOfWork) -> list[dict[str, Any]]:
    first_ack = (
        sa.select(TimelineEntry.ticket_id, sa.func.min(TimelineEntry.at).label("acked"))
        .where(TimelineEntry.kind == "acknowledged").group_by(TimelineEntry.ticket_id).subquery()
    )
    rows = (await uow.session.execute(
        sa.select(Ticket.department_code, Ticket.opened_at, Ticket.resolved_at, first_ack.c.acked)
        .outerjoin(first_ack, first_ack.c.ticket_id == Ticket.id)
    )).all()
    per: dict[str, dict[str, list[float] | int]] = {}
    for dept, opened, resolved, acked in rows:
        d = per.setdefault(dept, {"tickets": 0, "ack": [], "resolve": []})
        d["tickets"] += 1  # type: ignore[operator]
        if acked is not None:
            if acked.tzinfo is None:  # the min() of a UTC column comes back naive on SQLite
                from datetime import UTC

                acked = datetime.fromisoformat(str(acked)).replace(tzinfo=UTC)
            d["ack"].append((acked - opened).total_seconds() / 3600)  # type: ignore[union-attr]
        if resolved is not None:
            d["resolve"].append((resolved - opened).total_seconds() / 3600)  # type: ignore[union-attr]
    out = []
    for dept in sorted(per):
        d = per[dept]
        ack_mean, ack_median = _stats(d["ack"])  # type: ignore[arg-type]
        res_mean, res_median = _stats(d["resolve"])  # type: ignore[arg-type]
        out.append({
            "department": dept, "tickets": d["tickets"], "acknowledged": len(d["ack"]),  # type: ignore[arg-type]
            "mean_hours_to_acknowledge": ack_mean, "median_hours_to_acknowledge": ack_median,
            "resolved": len(d["resolve"]), "mean_hours_to_resolve": res_mean,  # type: ignore[arg-type]
            "median_hours_to_resolve": res_median,
        })
    return out


async def escalations_per_month(uow: UnitOfWork) -> list[dict[str, Any]]:
    rows = (await uow.session.execute(sa.select(Escalation.at, Escalation.department_code, Escalation.to_level))).all()
    counts: dict[tuple[str, str], dict[str, Any]] = {}
    for at, dept, level in rows:
        key = (at.strftime("%Y-%m"), dept)
        e = counts.setdefault(key, {"month": key[0], "department": dept, "escalations": 0,
                                    "to_level_1": 0, "to_level_2": 0, "to_level_3": 0})
        e["escalations"] += 1
        if 1 <= level <= 3:
            e[f"to_level_{level}"] += 1
    return [counts[k] for k in sorted(counts)]


def to_csv(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    buf = io.StringIO()
    cols = columns or (list(rows[0].keys()) if rows else [])
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()
