"""The SQL of the history backfill (issue 20), apart from its rules: the backfill rows (one per
imported batch: enqueue, claim with a lease, advance page by page, finish) and the bulk write of
the imported requests' facts.

Facts are the same rows ``derived311`` keeps for live events (``request_facts``), written so that
the newer state wins whichever arrives first: an imported request's fact replaces a stored one only
if its ``updated_at`` is not older (a live event about the same request after the import stays), and
feedback already recorded is kept. Writing a page again changes nothing, so a page re-read after a
crash is harmless. On PostgreSQL a page goes through COPY into a staging table and one
``INSERT ... SELECT ... ON CONFLICT``; elsewhere one executemany."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa

from citystat_common.db import dialect_insert
from citystat_common.events import HistoryImported, ServiceRequestData
from citystat_common.uow import UnitOfWork
from indicators.models import HistoryBackfill, RequestFact

_FACTS = cast(sa.Table, RequestFact.__table__)
_JOBS = cast(sa.Table, HistoryBackfill.__table__)
# what an imported request sets; feedback columns are left as they are (an import carries none)
REQUEST_COLUMNS = ("service_request_id", "department_code", "service_code", "service_name", "channel", "status",
                   "requested_at", "expected_at", "closed_at", "first_contact_resolution", "duplicate_of", "updated_at")
COPY_MIN = 200  # rows of a page from which PostgreSQL stages them with COPY


def fact_row(r: ServiceRequestData) -> tuple[Any, ...]:
    """The fact of an imported request, as ``derived311`` makes it of a live event."""
    return (r.service_request_id, r.department_code, r.service_code, r.service_name[:200], r.channel, r.status,
            r.requested_datetime, r.expected_datetime, r.closed_datetime if r.status == "closed" else None,
            r.first_contact_resolution, r.duplicate_of, r.updated_datetime)


async def store_facts(uow: UnitOfWork, requests: Sequence[ServiceRequestData]) -> None:
    rows = [fact_row(r) for r in requests]
    if not rows:
        return
    if uow.dialect == "postgresql" and len(rows) >= COPY_MIN:
        await _pg_copy_facts(uow, rows)
        return
    stmt = dialect_insert(_FACTS, uow.dialect)
    stmt = stmt.on_conflict_do_update(
        index_elements=["service_request_id"], set_={n: stmt.excluded[n] for n in REQUEST_COLUMNS[1:]},
        where=stmt.excluded.updated_at >= _FACTS.c.updated_at)
    await uow.session.execute(stmt, [dict(zip(REQUEST_COLUMNS, row, strict=True)) for row in rows])


async def _pg_copy_facts(uow: UnitOfWork, rows: list[tuple[Any, ...]]) -> None:
    conn = await uow.session.connection()  # inside the unit of work's transaction
    apg: Any = (await conn.get_raw_connection()).driver_connection
    stage = "_stage_request_facts"
    cols = ", ".join(REQUEST_COLUMNS)
    await apg.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} AS SELECT {cols} FROM request_facts WITH NO DATA")
    await apg.execute(f"TRUNCATE {stage}")
    await apg.copy_records_to_table(stage, records=rows, columns=list(REQUEST_COLUMNS))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in REQUEST_COLUMNS[1:])
    await apg.execute(
        f"INSERT INTO request_facts ({cols}) SELECT {cols} FROM {stage} ON CONFLICT (service_request_id) "
        f"DO UPDATE SET {updates} WHERE EXCLUDED.updated_at >= request_facts.updated_at")
    await apg.execute(f"TRUNCATE {stage}")


async def enqueue(uow: UnitOfWork, *, data: HistoryImported, now: datetime) -> None:
    """The batch to backfill, once: the same batch announced again changes nothing."""
    stmt = dialect_insert(_JOBS, uow.dialect).values(
        batch_id=data.batch_id, file_name=data.file_name[:500], requests=data.requests,
        first_requested=data.first_requested, last_requested=data.last_requested,
        department_codes=list(data.department_codes), service_codes=list(data.service_codes), after=0, facts=0,
        pages_done=False, lease_until=None, error=None, received_at=now, finished_at=None,
    ).on_conflict_do_nothing(index_elements=["batch_id"])
    await uow.session.execute(stmt)


async def claim(uow: UnitOfWork, *, now: datetime, lease_seconds: float) -> HistoryBackfill | None:
    """The oldest unfinished backfill nobody holds, now held by the caller until the lease ends
    (a conditional UPDATE, so two workers never both win it)."""
    free = sa.or_(HistoryBackfill.lease_until.is_(None), HistoryBackfill.lease_until < now)
    candidates = (await uow.session.execute(
        sa.select(HistoryBackfill.batch_id).where(HistoryBackfill.finished_at.is_(None), free)
        .order_by(HistoryBackfill.received_at, HistoryBackfill.batch_id).limit(5))).scalars().all()
    for batch_id in candidates:
        res = await uow.session.execute(
            sa.update(HistoryBackfill).where(HistoryBackfill.batch_id == batch_id, HistoryBackfill.finished_at.is_(None),
                                             free)
            .values(lease_until=now + timedelta(seconds=lease_seconds)).execution_options(synchronize_session=False))
        if getattr(res, "rowcount", 0) == 1:
            return await uow.session.get(HistoryBackfill, batch_id, populate_existing=True)
    return None


async def advance(uow: UnitOfWork, *, batch_id: str, after: int, facts: int, pages_done: bool, lease_until: datetime) -> None:
    """A page stored: where the next read starts, how many facts so far, the lease renewed."""
    await uow.session.execute(
        sa.update(HistoryBackfill).where(HistoryBackfill.batch_id == batch_id)
        .values(after=after, facts=HistoryBackfill.facts + facts, pages_done=pages_done, lease_until=lease_until,
                error=None).execution_options(synchronize_session=False))


async def release(uow: UnitOfWork, *, batch_id: str, error: str | None) -> None:
    """Let go of a backfill that could not go on (intake311 away): another try takes it up."""
    await uow.session.execute(
        sa.update(HistoryBackfill).where(HistoryBackfill.batch_id == batch_id)
        .values(lease_until=None, error=error[:500] if error else None).execution_options(synchronize_session=False))


async def finish(uow: UnitOfWork, *, batch_id: str, now: datetime, error: str | None = None) -> None:
    await uow.session.execute(
        sa.update(HistoryBackfill).where(HistoryBackfill.batch_id == batch_id)
        .values(finished_at=now, lease_until=None, pages_done=True, error=error[:500] if error else None)
        .execution_options(synchronize_session=False))


async def service_scopes(uow: UnitOfWork, departments: Sequence[str], services: Sequence[str]) -> set[tuple[str, str]]:
    """The (department, service) pairs with facts among the batch's departments and services."""
    out: set[tuple[str, str]] = set()
    wanted = set(services)
    for i in range(0, len(departments), 500):
        res = await uow.session.execute(
            sa.select(RequestFact.department_code, RequestFact.service_code).distinct()
            .where(RequestFact.department_code.in_(departments[i : i + 500])))
        out |= {(d, s) for d, s in res.tuples() if s in wanted}
    return out


async def service_names(uow: UnitOfWork, codes: Sequence[str]) -> dict[str, str]:
    """Each service code's name as the facts have it (for a new indicator's label)."""
    out: dict[str, str] = {}
    codes = sorted(set(codes))
    for i in range(0, len(codes), 500):
        res = await uow.session.execute(
            sa.select(RequestFact.service_code, sa.func.max(RequestFact.service_name))
            .where(RequestFact.service_code.in_(codes[i : i + 500])).group_by(RequestFact.service_code))
        out.update({code: name for code, name in res.tuples()})
    return out


FactLine = tuple[datetime | None, datetime | None, datetime | None, bool, bool, int | None, datetime | None, str]


async def department_facts(uow: UnitOfWork, department: str) -> list[FactLine]:
    """Every fact of a department, as the figures need them: requested, expected, closed, first
    contact, duplicate, feedback score and time, service code."""
    f = RequestFact
    res = await uow.session.execute(
        sa.select(f.requested_at, f.expected_at, f.closed_at, f.first_contact_resolution, f.duplicate_of.is_not(None),
                  f.feedback_score, f.feedback_at, f.service_code).where(f.department_code == department))
    return [cast(FactLine, tuple(row)) for row in res]
