"""The history import's SQL: import batches, which legacy numbers are already stored, and the bulk
write of imported requests (PostgreSQL: COPY through asyncpg, one round trip per chunk; SQLite: one
executemany). No events: history is written as it was, and one summary event per batch tells the
indicators (history_import.finish). Nothing here commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from citystat_common.uow import UnitOfWork
from intake311.models import ImportBatch, RequestArea, Service, ServiceRequest

# The columns an imported request is written with, in COPY order (the rest take their NULLs).
COLUMNS = (
    "legacy_id", "import_batch_id", "pending", "service_code", "department_code", "channel", "status",
    "detailed_status", "closure_reason", "first_contact_resolution", "description", "lat", "long", "cell",
    "address_string", "address_key", "zipcode", "attributes", "status_notes", "requested_datetime",
    "updated_datetime", "expected_datetime", "closed_datetime", "created_by", "created_by_kind",
    "created_by_email", "created_by_via",
)
_ATTRIBUTES = COLUMNS.index("attributes")


async def find_batch(uow: UnitOfWork, file_sha256: str, mapping_sha256: str) -> ImportBatch | None:
    stmt = sa.select(ImportBatch).where(ImportBatch.file_sha256 == file_sha256,
                                        ImportBatch.mapping_sha256 == mapping_sha256)
    return (await uow.session.execute(stmt)).scalar_one_or_none()


async def get_batch(uow: UnitOfWork, batch_id: str) -> ImportBatch | None:
    return await uow.session.get(ImportBatch, batch_id)


async def list_batches(uow: UnitOfWork, *, offset: int, limit: int) -> tuple[list[ImportBatch], int]:
    total = (await uow.session.execute(sa.select(sa.func.count()).select_from(ImportBatch))).scalar_one()
    stmt = sa.select(ImportBatch).order_by(ImportBatch.started_at.desc(), ImportBatch.id).offset(offset).limit(limit)
    return list((await uow.session.execute(stmt)).scalars()), int(total)


async def stored_legacy_ids(uow: UnitOfWork, legacy_ids: Sequence[str]) -> dict[str, str | None]:
    """Of these legacy numbers, those already stored, with the batch that brought each (None: filed here)."""
    R = ServiceRequest
    out: dict[str, str | None] = {}
    for i in range(0, len(legacy_ids), 5000):  # bound the parameter list (SQLite: 32766 variables)
        chunk = list(legacy_ids[i:i + 5000])
        if uow.dialect == "postgresql":
            stmt = sa.select(R.legacy_id, R.import_batch_id).where(
                R.legacy_id == sa.func.any(sa.cast(sa.bindparam("ids", chunk), sa.ARRAY(sa.String))))
        else:
            stmt = sa.select(R.legacy_id, R.import_batch_id).where(R.legacy_id.in_(chunk))
        for legacy, batch in (await uow.session.execute(stmt)).all():
            out[str(legacy)] = batch
    return out


async def write_requests(uow: UnitOfWork, rows: Sequence[tuple[Any, ...]], *, ids: Sequence[int] | None = None) -> None:
    """Imported requests, one tuple per row in COLUMNS order (``attributes`` a dict); ``ids``: their
    numbers, drawn beforehand (``service.RequestNumbers``) when their areas are written with them."""
    if not rows:
        return
    columns = ("id", *COLUMNS) if ids is not None else COLUMNS
    if ids is not None:
        rows = [(rid, *r) for rid, r in zip(ids, rows, strict=True)]
    at = _ATTRIBUTES + (ids is not None)
    if uow.dialect == "postgresql":
        # COPY inside the unit's transaction: committed (or lost) with the batch's counters
        records = [(*r[:at], orjson.dumps(r[at]).decode(), *r[at + 1:]) for r in rows]
        await _copy(uow, ServiceRequest.__tablename__, records, columns)
        return
    await uow.insert(ServiceRequest.__table__, [dict(zip(columns, r, strict=True)) for r in rows])  # type: ignore[arg-type]


async def write_request_areas(uow: UnitOfWork, rows: Sequence[tuple[int, str, str | None, int]]) -> None:
    """The imported requests' areas, (request id, layer, code, version id) each (the columns of
    ``areas_store.request_area_rows`` as tuples: COPY takes them as they are), in the chunk's transaction."""
    if not rows:
        return
    if uow.dialect == "postgresql":
        await _copy(uow, RequestArea.__tablename__, rows, _AREA_COLUMNS)
        return
    await uow.insert(RequestArea.__table__, [dict(zip(_AREA_COLUMNS, r, strict=True)) for r in rows])  # type: ignore[arg-type]


_AREA_COLUMNS = ("request_id", "layer", "code", "version_id")


async def _copy(uow: UnitOfWork, table: str, records: Sequence[tuple[Any, ...]], columns: Sequence[str]) -> None:
    conn = await uow.session.connection()
    apg: Any = (await conn.get_raw_connection()).driver_connection
    await apg.copy_records_to_table(table, records=records, columns=list(columns))


async def batch_figures(uow: UnitOfWork, batch_id: str) -> tuple[int, datetime | None, datetime | None, list[str], list[str]]:
    """(requests, first and last requested time, departments, services) of a batch, as stored."""
    R = ServiceRequest
    mine = R.import_batch_id == batch_id
    n, low, high = (await uow.session.execute(
        sa.select(sa.func.count(), sa.func.min(R.requested_datetime), sa.func.max(R.requested_datetime)).where(mine)
    )).one()
    first, last = _aware(low), _aware(high)
    depts = [d for (d,) in await uow.session.execute(sa.select(R.department_code).where(mine).distinct().order_by(R.department_code))]
    services = [s for (s,) in await uow.session.execute(sa.select(R.service_code).where(mine).distinct().order_by(R.service_code))]
    return int(n), first, last, depts, services


def _aware(value: Any) -> datetime | None:
    # min()/max() come back raw from SQLite (text, no type processing): read them as the column would
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def batch_requests(uow: UnitOfWork, batch_id: str, *, after: int, limit: int) -> list[tuple[ServiceRequest, str]]:
    """A batch's requests with their service names, in id order after ``after`` (keyset paging: a
    backfill reads a million rows without OFFSET's growing cost)."""
    R = ServiceRequest
    stmt = (sa.select(R, Service.service_name).join(Service, Service.service_code == R.service_code)
            .where(R.import_batch_id == batch_id, R.id > after).order_by(R.id).limit(limit))
    return [(r, name) for r, name in (await uow.session.execute(stmt)).all()]
