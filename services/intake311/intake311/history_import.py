"""Importing a city's request history from a CSV export (issue 20): each row keeps its original
dates, status, closure text, owning agency, channel and legacy number; every other column becomes an
attribute.

- Idempotent on the legacy number: a number already stored is never written again, and the same
  (file, mapping) pair run again resumes its unfinished batch or, once finished, changes nothing.
- Resumable: rows are committed in chunks with the batch; after a kill, a re-run skips what is there.
- No storm: no per-request events. The finished batch emits one ``intake311.history.imported`` with
  its period; the indicators read the batch's requests back (GET /admin/imports/{id}/requests).
- One pass reports everything: every refused row with all its reasons, and every value the city
  lacks (services, departments, statuses, channels, closure texts) with how many rows name it.

``run_import`` is the driver (the CLI and the admin route call it): it owns the commits of its chunks.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import sqlalchemy as sa

from citystat_common.auth import Actor
from citystat_common.calendar import BusinessCalendar
from citystat_common.db import utcnow
from citystat_common.events import HistoryImported
from citystat_common.uow import UnitOfWork
from intake311 import history_store, service
from intake311.actors import filed_by
from intake311.areas_asof import AsOfTagger
from intake311.deps import Deps
from intake311.duplicates import address_key
from intake311.mapping import Converted, Mapping, describe_unknown
from intake311.models import Department, ImportBatch, grid_cell
from intake311.service_levels import BeyondHorizon, Level, due_datetime, pick_level

_MISSING: Any = object()
MAX_LISTED = 1000  # refused rows listed one by one; beyond, counted (the unknown values are all listed)
UowFactory = Callable[[], UnitOfWork]
Progress = Callable[[int], None]  # bytes of the file read so far


@dataclass(frozen=True)
class _Level:
    department_code: str
    level: Level
    rules: tuple[dict[str, Any], ...]
    calendar: BusinessCalendar
    fixed: timedelta | None = None  # a level in calendar time with no rules: the same span for every row


@dataclass
class ImportReport:
    file_name: str
    dry_run: bool
    batch_id: str | None = None
    already_finished: bool = False  # the same file with the same mapping was imported before: nothing done
    rows_total: int = 0
    rows_imported: int = 0  # written by this run (dry run: would be)
    rows_present: int = 0  # legacy numbers already stored (by another batch or filed here)
    rows_resumed: int = 0  # written by an earlier, interrupted run of this batch
    rows_refused: int = 0
    refused: list[tuple[int, str, list[str]]] = field(default_factory=list)  # (row, legacy number, reasons)
    unknown: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    first_requested: datetime | None = None
    last_requested: datetime | None = None

    def lines(self) -> list[str]:
        """The report as printed (the CLI) and returned (the API); the last line is the count."""
        out: list[str] = []
        if self.already_finished:
            out.append(f"{self.file_name} was already imported with this mapping (batch {self.batch_id}); nothing changed")
        for row, legacy, reasons in self.refused:
            out.append(f"row {row} ({legacy or 'no number'}): refused: {'; '.join(reasons)}")
        if self.rows_refused > len(self.refused):
            out.append(f"... and {self.rows_refused - len(self.refused)} more refused rows")
        for kind in sorted(self.unknown):
            values = self.unknown[kind]
            out.append(f"{describe_unknown(kind)}:")
            out.extend(f"  {value!r}: {n} rows" for value, n in sorted(values.items(), key=lambda kv: (-kv[1], kv[0])))
        if self.rows_present:
            out.append(f"{self.rows_present} rows have a legacy number already stored: skipped")
        if self.dry_run:
            out.append(f"{self.rows_imported} of {self.rows_total} rows would be imported")
        else:
            done = self.rows_imported + self.rows_resumed
            out.append(f"{done} of {self.rows_total} rows imported (batch {self.batch_id})")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id, "file_name": self.file_name, "dry_run": self.dry_run,
            "already_finished": self.already_finished, "rows_total": self.rows_total,
            "rows_imported": self.rows_imported, "rows_resumed": self.rows_resumed, "rows_present": self.rows_present,
            "rows_refused": self.rows_refused,
            "refused": [{"row": r, "legacy_id": legacy, "reasons": reasons} for r, legacy, reasons in self.refused],
            "unknown": {kind: dict(values) for kind, values in self.unknown.items()},
            "first_requested": self.first_requested, "last_requested": self.last_requested, "report": self.lines(),
        }


class _CountingReader(io.RawIOBase):
    """The file's bytes as read, counted for the progress display."""

    def __init__(self, raw: IO[bytes], progress: Progress | None):
        self.raw, self.progress, self.count = raw, progress, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        if self.progress is not None:
            self.progress(self.count)
        return n


def file_digest(source: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: source.read(1 << 20), b""):
        digest.update(chunk)
    source.seek(0)
    return digest.hexdigest()


async def _catalog(uow: UnitOfWork, timezone: str) -> tuple[dict[str, _Level], set[str]]:
    services = {}
    for s in await service.list_services(uow, active_only=False):
        level, rules = Level(float(s.sla_amount), s.sla_unit), tuple(s.sla_rules or ())
        calendar = service.business_calendar(s.calendar, timezone)
        services[s.service_code] = _Level(s.department_code, level, rules, calendar, _fixed(level, rules, calendar))
    departments = {code for (code,) in await uow.session.execute(sa.select(Department.code).where(Department.active.is_(True)))}
    return services, departments


def _fixed(level: Level, rules: tuple[dict[str, Any], ...], calendar: BusinessCalendar) -> timedelta | None:
    if rules or not level.unit.startswith("calendar_"):
        return None
    try:
        return due_datetime(calendar, _EPOCH, level.amount, level.unit) - _EPOCH
    except BeyondHorizon:
        return None


_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _expected(svc: _Level, row: Converted) -> datetime | None:
    if row.expected_datetime is not None:
        return row.expected_datetime
    if svc.fixed is not None:  # due_datetime's own arithmetic for calendar time, without its checks per row
        return row.requested_datetime + svc.fixed
    level, _ = pick_level(svc.level, svc.rules, row.attributes)
    try:
        return due_datetime(svc.calendar, row.requested_datetime, level.amount, level.unit)
    except BeyondHorizon:
        return None


def _record(row: Converted, svc: _Level, department: str, batch_id: str | None, who: dict[str, Any],
            keys: dict[str | None, str | None]) -> tuple[Any, ...]:
    address = row.address_string
    key = keys.get(address, _MISSING)
    if key is _MISSING:  # a city's addresses repeat: each is normalised once per import
        if len(keys) >= 100_000:
            keys.clear()
        key = keys[address] = address_key(address)
    return (
        row.legacy_id, batch_id, False, row.service_code, department, row.channel, row.status,
        row.detailed_status, row.closure_reason, False, row.description, row.lat, row.long,
        grid_cell(row.lat, row.long), address, key, row.zipcode,
        row.attributes, row.status_notes, row.requested_datetime, row.updated_datetime, _expected(svc, row),
        row.closed_datetime, who["created_by"], who["created_by_kind"], who["created_by_email"], who["created_by_via"],
    )


async def run_import(
    uow_factory: UowFactory, deps: Deps, *, source: IO[bytes], file_name: str, mapping: Mapping, actor: Actor,
    dry_run: bool = False, chunk_rows: int = 5000, progress: Progress | None = None,
) -> ImportReport:
    """Import (or with ``dry_run``, only check) the CSV in ``source``. Raises MappingError when the
    file lacks a mapped column; every row-level problem goes into the report."""
    report = ImportReport(file_name=file_name, dry_run=dry_run)
    # reading and checking the file is CPU work: on a worker thread, so the API's event loop serves
    # other requests meanwhile (one thread at a time touches the reader and the report)
    file_sha = await asyncio.to_thread(file_digest, source)
    async with uow_factory() as uow:
        batch = await history_store.find_batch(uow, file_sha, mapping.digest)
        services, departments = await _catalog(uow, deps.timezone)
        tagger = await AsOfTagger.load(uow)  # the layers as they are now, every version (issue 21)
        if batch is not None and batch.finished_at is not None:
            report.batch_id, report.already_finished = batch.id, True
            report.rows_total, report.rows_refused = batch.rows_total, batch.rows_refused
            report.rows_present, report.rows_resumed = batch.rows_present, batch.rows_imported
            return report
        batch_id: str | None = batch.id if batch is not None else None
        if batch_id is None and not dry_run:
            batch_id = str(uuid.uuid4())
            await uow.insert(ImportBatch.__table__, [{  # type: ignore[arg-type]
                "id": batch_id, "file_name": file_name[:500], "file_sha256": file_sha, "mapping_sha256": mapping.digest,
                "imported_by": actor.as_dict(), "started_at": utcnow(), "finished_at": None, "rows_total": 0,
                "rows_imported": 0, "rows_present": 0, "rows_refused": 0, "first_requested": None,
                "last_requested": None,
            }])
            await uow.commit()
    report.batch_id = batch_id
    who = filed_by(actor)
    text = io.TextIOWrapper(io.BufferedReader(_CountingReader(source, progress), 1 << 20),
                            encoding=mapping.doc.source.encoding, newline="")
    reader = csv.reader(text, delimiter=mapping.doc.source.delimiter, strict=True)
    await asyncio.to_thread(lambda: mapping.bind(next(reader, [])))
    seen: set[str] = set()
    rows = enumerate(reader, start=1)
    keys: dict[str | None, str | None] = {}

    def next_chunk() -> list[tuple[Any, ...]]:
        chunk: list[tuple[Any, ...]] = []
        for number, cells in rows:
            report.rows_total += 1
            record = _check(mapping, cells, number, seen, services, departments, report, batch_id, who, keys)
            if record is not None:
                chunk.append(record)
                if len(chunk) >= chunk_rows:
                    break
        return chunk

    try:
        # the next chunk is read and converted in a thread while this one is written: the database's
        # work and Python's overlap (the chunks are still written, and committed, one after another)
        chunk = await asyncio.to_thread(next_chunk)
        while chunk:
            following = asyncio.ensure_future(asyncio.to_thread(next_chunk))
            try:
                await _write(uow_factory, chunk, batch_id, dry_run, report, tagger)
            except BaseException:
                await _settle(following)  # the reader stops before the file is closed under it
                raise
            chunk = await following
    except (csv.Error, UnicodeDecodeError) as exc:
        # a broken file (an unclosed quote, another encoding) stops here; what was written stays, and
        # the batch stays unfinished so that a corrected file is a new batch and this one is visible
        report.rows_refused += 1
        report.refused.append((report.rows_total + 1, "", [f"the file cannot be read past here: {exc}"]))
        raise ImportStopped(report) from exc
    if not dry_run:
        assert batch_id is not None
        await _finish(uow_factory, batch_id, actor, report)
    return report


async def _settle(future: asyncio.Future[Any]) -> None:
    await asyncio.wait({future})
    if not future.cancelled():
        future.exception()  # retrieved: the write's own exception is the one raised


class ImportStopped(Exception):
    def __init__(self, report: ImportReport):
        super().__init__(report.refused[-1][2][0] if report.refused else "import stopped")
        self.report = report


def _check(mapping: Mapping, cells: Sequence[str], number: int, seen: set[str], services: dict[str, _Level],
           departments: set[str], report: ImportReport, batch_id: str | None, who: dict[str, Any],
           keys: dict[str | None, str | None]) -> tuple[Any, ...] | None:
    result = mapping.convert(cells)
    reasons: list[str]
    if isinstance(result, Converted):
        reasons, unknown = [], []
        svc = services.get(result.service_code)
        if svc is None:
            unknown.append(("service_code", result.service_code))
        department = result.department_code or (svc.department_code if svc else "")
        if department and department not in departments:
            unknown.append(("department_code", department))
        if result.legacy_id in seen:
            reasons.append(f"legacy number {result.legacy_id!r} appears earlier in the file")
        legacy = result.legacy_id
    else:
        reasons, unknown, legacy = list(result.reasons), list(result.unknown), ""
    for kind, value in unknown:
        report.unknown[kind][value] += 1
        reasons.append(f"unknown {kind.replace('_code', '')} {value!r}")
    if reasons:
        report.rows_refused += 1
        if len(report.refused) < MAX_LISTED:
            report.refused.append((number, legacy or mapping.legacy_of(cells), reasons))
        return None
    assert isinstance(result, Converted) and svc is not None
    seen.add(result.legacy_id)
    for t in (result.requested_datetime,):
        if report.first_requested is None or t < report.first_requested:
            report.first_requested = t
        if report.last_requested is None or t > report.last_requested:
            report.last_requested = t
    return _record(result, svc, department, batch_id, who, keys)


async def _write(uow_factory: UowFactory, chunk: list[tuple[Any, ...]], batch_id: str | None, dry_run: bool,
                 report: ImportReport, tagger: AsOfTagger) -> None:
    if not chunk:
        return
    async with uow_factory() as uow:
        stored = await history_store.stored_legacy_ids(uow, [r[0] for r in chunk])
        fresh = [r for r in chunk if r[0] not in stored]
        mine = sum(1 for b in stored.values() if batch_id is not None and b == batch_id)
        report.rows_resumed += mine
        report.rows_present += len(stored) - mine
        report.rows_imported += len(fresh)
        if dry_run:
            return
        if tagger and fresh:  # each request's areas as of its own date, written with it (issue 21)
            ids = await service.RequestNumbers().take(uow, len(fresh))
            tags = await tagger.tag(uow, points=[(r[_LAT], r[_LONG]) if r[_LAT] is not None and r[_LONG] is not None
                                                 else None for r in fresh], times=[r[_REQUESTED] for r in fresh])
            await history_store.write_requests(uow, fresh, ids=ids)
            await history_store.write_request_areas(uow, [
                (rid, layer, code, vid) for rid, t in zip(ids, tags, strict=True) for layer, (vid, code) in sorted(t.items())])
        else:
            await history_store.write_requests(uow, fresh)
        await uow.commit()


_LAT, _LONG, _REQUESTED = (history_store.COLUMNS.index(c) for c in ("lat", "long", "requested_datetime"))


async def _finish(uow_factory: UowFactory, batch_id: str, actor: Actor, report: ImportReport) -> None:
    """Close the batch with its counts and period, and tell the indicators once (if it wrote anything)."""
    async with uow_factory() as uow:
        batch = await history_store.get_batch(uow, batch_id)
        assert batch is not None
        n, first, last, depts, services = await history_store.batch_figures(uow, batch_id)
        now = utcnow()
        batch.finished_at, batch.rows_total, batch.rows_imported = now, report.rows_total, n
        batch.rows_present, batch.rows_refused = report.rows_present, report.rows_refused
        batch.first_requested, batch.last_requested = first, last
        report.first_requested, report.last_requested = first, last
        if n and first is not None and last is not None:
            uow.emit(HistoryImported(
                batch_id=batch_id, file_name=batch.file_name, requests=n, first_requested=first, last_requested=last,
                department_codes=depts, service_codes=services, imported_by=actor.label, imported_at=now,
            ), subject=batch_id)
        await uow.commit()
