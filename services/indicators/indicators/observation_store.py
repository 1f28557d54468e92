"""Where observations are stored: the row as a typed record, reading an indicator's stored rows,
upserts (``INSERT ... ON CONFLICT`` in batches; COPY through a staging table for large batches on
PostgreSQL), the COPY of new rows, row locks and revisions. The rules live in
``indicators.observations``."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from citystat_common.db import dialect_insert
from citystat_common.uow import UnitOfWork
from indicators.models import Indicator, ObservationRevision, observations
from indicators.rules import CHUNK_INDICATORS


@dataclass(slots=True)
class ObsRow:
    """One row of ``observations``; the fields are the table's columns (checked by a unit test)."""

    indicator_id: str
    period_start: date
    period_end: date
    period_label: str
    value: float
    status: str
    raw_status: str
    miss: float | None
    reference: float | None
    streak: int
    reason: str | None
    revision: int
    note: str | None
    source: str
    updated_by: str
    updated_at: datetime | None  # None on a new row COPYed in: the column's default, the transaction's time

    def evaluation(self) -> tuple[str, str, float | None, float | None, int, str | None]:
        return (self.status, self.raw_status, self.miss, self.reference, self.streak, self.reason)

    def set_evaluation(self, ev: tuple[str, str, float | None, float | None, int, str | None]) -> None:
        self.status, self.raw_status, self.miss, self.reference, self.streak, self.reason = ev


OBS_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ObsRow))
_SELECT_COLUMNS = [observations.c[name] for name in OBS_FIELDS]
_COPY_FIELDS = [name for name in OBS_FIELDS if name != "updated_at"]
OBS_KEYS = ["indicator_id", "period_start"]
COPY_THRESHOLD = 2000  # rows of one upsert from which PostgreSQL stages them with COPY
NEW_ROWS_COPY_MIN = 500  # fewer new rows: one executemany costs less than COPY's extra round trips


async def stored_rows(uow: UnitOfWork, ids: Sequence[str], low: date) -> dict[str, dict[date, ObsRow]]:
    """The indicators' stored rows from ``low`` on, by indicator and period start."""
    out: dict[str, dict[date, ObsRow]] = {i: {} for i in ids}
    res = await uow.session.execute(
        sa.select(*_SELECT_COLUMNS).where(observations.c.indicator_id.in_(list(ids)), observations.c.period_start >= low)
    )
    for row in res:
        r = ObsRow(*row)  # the columns selected in ObsRow's field order
        out[r.indicator_id][r.period_start] = r
    return out


async def lock_indicators(uow: UnitOfWork, inds: dict[str, Indicator]) -> None:
    """PostgreSQL: lock the indicators (sorted, so two writers never deadlock) before their stored
    rows are read: a concurrent writer of the same indicator waits for our commit and then reads
    our rows, so new rows are really new (COPY needs no ON CONFLICT) and revisions are not lost.
    The published status is read as committed here, for ``apply_effective``."""
    ids = sorted(inds)
    for i in range(0, len(ids), CHUNK_INDICATORS):
        res = await uow.session.execute(
            sa.select(Indicator.id, Indicator.status, Indicator.episode_id)
            .where(Indicator.id.in_(ids[i : i + CHUNK_INDICATORS])).order_by(Indicator.id).with_for_update()
        )
        for iid, status, episode_id in res:
            set_committed_value(inds[iid], "status", status)
            set_committed_value(inds[iid], "episode_id", episode_id)


async def write_rows(uow: UnitOfWork, rows: list[ObsRow], chunk: int) -> None:
    """Upsert changed and new rows (those COPYed already are not in ``rows``)."""
    # not dataclasses.asdict: it deep-copies every value
    await upsert(uow, observations, [{n: getattr(r, n) for n in OBS_FIELDS} for r in rows], OBS_KEYS, chunk)


async def copy_new_rows(uow: UnitOfWork, rows: Iterable[ObsRow]) -> None:
    """COPY new rows straight into the table, inside the unit of work's transaction. ``updated_at``
    is left to the column's default, the transaction's time: the same for every row of the call, and
    encoding an aware datetime per row cost more than the other 15 columns together."""
    conn = await uow.session.connection()
    apg: Any = (await conn.get_raw_connection()).driver_connection
    records = ((r.indicator_id, r.period_start, r.period_end, r.period_label, r.value, r.status, r.raw_status, r.miss,
                r.reference, r.streak, r.reason, r.revision, r.note, r.source, r.updated_by) for r in rows)
    await apg.copy_records_to_table(observations.name, records=records, columns=_COPY_FIELDS)


async def insert_revisions(uow: UnitOfWork, revisions: list[dict[str, Any]], chunk: int) -> None:
    table = cast(sa.Table, ObservationRevision.__table__)
    for j in range(0, len(revisions), chunk):
        await uow.session.execute(sa.insert(table), revisions[j : j + chunk])


@functools.lru_cache(maxsize=32)
def _upsert_stmt(dialect: str, table: sa.Table, keys: tuple[str, ...]) -> Any:
    """Built once per table: building it (a SET entry per column) took ~1.8 ms per call, as long
    as the statement's round trip."""
    stmt = dialect_insert(table, dialect)
    return stmt.on_conflict_do_update(
        index_elements=keys, set_={c.name: stmt.excluded[c.name] for c in table.c if c.name not in keys}
    )


async def upsert(uow: UnitOfWork, table: sa.Table, rows: list[dict[str, Any]], keys: list[str], chunk: int = 5000) -> None:
    """INSERT ... ON CONFLICT DO UPDATE in batches (executemany). On PostgreSQL, large batches of
    observations go through COPY into a temporary staging table and one INSERT ... SELECT ... ON CONFLICT."""
    if not rows:
        return
    dialect = uow.dialect
    if dialect == "postgresql" and table is observations and len(rows) >= COPY_THRESHOLD:
        await _pg_copy_upsert(uow, table, rows, keys)
        return
    stmt = _upsert_stmt(dialect, table, tuple(keys))
    for i in range(0, len(rows), chunk):
        await uow.session.execute(stmt, rows[i : i + chunk])


async def _pg_copy_upsert(uow: UnitOfWork, table: sa.Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
    conn = await uow.session.connection()  # inside the unit of work's transaction
    raw = await conn.get_raw_connection()
    apg: Any = raw.driver_connection
    cols = [c.name for c in table.c]
    stage = f"_stage_{table.name}"
    await apg.execute(
        f'CREATE TEMPORARY TABLE IF NOT EXISTS "{stage}" (LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS'
    )
    await apg.execute(f'TRUNCATE "{stage}"')
    await apg.copy_records_to_table(stage, records=[tuple(r[c] for c in cols) for r in rows], columns=cols)
    col_list = ", ".join(f'"{c}"' for c in cols)
    updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in cols if c not in keys)
    await apg.execute(
        f'INSERT INTO "{table.name}" ({col_list}) SELECT {col_list} FROM "{stage}" '
        f'ON CONFLICT ({", ".join(keys)}) DO UPDATE SET {updates}'
    )
    await apg.execute(f'TRUNCATE "{stage}"')
