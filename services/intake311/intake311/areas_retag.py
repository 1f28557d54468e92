"""Re-tagging the requests already stored when a layer gets a version that concerns them (issue 21):
``intake311-worker retag-areas LAYER [--since DATE]``.

A request is tagged when it comes in (or is imported) with the versions in force at its own time.
A version loaded later with an ``effective_from`` in the past (a layer loaded for the first time
while requests exist, or a corrected map back-dated to when it held) concerns requests already
stored: their tag in that layer is missing, or names another version. Loading does not re-tag them
by itself: a load is one quick admin call, a re-tag may walk a million requests, and a city loading
next year's map (or a back-dated one by mistake) should choose when that work runs. The load says
how many requests are concerned (``requests_to_retag``) and this command does it:

- each request with a position gets its area by the layer's version in force at its
  ``requested_datetime`` (never a version that started after it), as intake would have tagged it;
- in batches committed one by one, in request order; what a batch wrote is right, so a re-run after
  an interruption finds only what is left (resumable, and a second run changes nothing);
- the request's department is not changed (department rules by area decide the owner at intake
  only: a transfer moves a request), and no per-request event is published.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa

from citystat_common.db import create_engine, dialect_insert, session_factory
from citystat_common.errors import Invalid, NotFound
from citystat_common.runtime import WorkerCommand
from citystat_common.uow import UnitOfWork
from intake311 import areas_store
from intake311.areas import VersionIndex, VersionInfo
from intake311.areas_asof import ordered
from intake311.config import Settings
from intake311.models import PLUMBING, RequestArea, ServiceRequest
from intake311.open311 import parse_datetime

Progress = Callable[[int], None]  # requests re-tagged so far


def periods(versions: list[VersionInfo], since: datetime | None) -> list[tuple[VersionInfo, datetime, datetime | None]]:
    """(version, from, until) of each version's time in force, from ``since`` on: a version replaced
    before ``since``, or by a later load with the same start, has none."""
    out: list[tuple[VersionInfo, datetime, datetime | None]] = []
    versions = ordered(versions)
    for k, v in enumerate(versions):
        start = max(v.effective_from, since) if since is not None else v.effective_from
        end = versions[k + 1].effective_from if k + 1 < len(versions) else None
        if end is None or start < end:
            out.append((v, start, end))
    return out


def _stale(layer: str, version: VersionInfo, start: datetime, end: datetime | None) -> Any:
    """The requests of a version's period whose tag in ``layer`` is missing or another version's."""
    R, RA = ServiceRequest, sa.orm.aliased(RequestArea)
    conditions = [R.lat.is_not(None), R.long.is_not(None), R.requested_datetime >= start,
                  sa.or_(RA.request_id.is_(None), RA.version_id != version.id)]
    if end is not None:
        conditions.append(R.requested_datetime < end)
    return (sa.select(R.id, R.lat, R.long)
            .outerjoin(RA, sa.and_(RA.request_id == R.id, RA.layer == layer)).where(*conditions))


async def _versions(uow: UnitOfWork, layer: str) -> list[VersionInfo]:
    versions = [v for v in await areas_store.version_infos(uow) if v.layer == layer]
    if not versions:
        raise NotFound(f"no boundary layer {layer!r}", field="layer")
    return versions


async def stale_count(uow: UnitOfWork, *, layer: str, since: datetime | None = None) -> int:
    """How many stored requests a re-tag of ``layer`` would (re)write."""
    total = 0
    for version, start, end in periods(await _versions(uow, layer), since):
        stmt = _stale(layer, version, start, end).subquery()
        total += int((await uow.session.execute(sa.select(sa.func.count()).select_from(stmt))).scalar_one())
    return total


async def _put(uow: UnitOfWork, rows: list[dict[str, Any]]) -> None:
    stmt = dialect_insert(RequestArea.__table__, uow.dialect).values(rows)
    await uow.session.execute(stmt.on_conflict_do_update(
        index_elements=["request_id", "layer"], set_={"code": stmt.excluded.code, "version_id": stmt.excluded.version_id}))


async def retag(uow_factory: Callable[[], UnitOfWork], *, layer: str, since: datetime | None = None,
                batch: int = 1000, progress: Progress | None = None) -> dict[str, Any]:
    """Tag every stored request of ``layer``'s periods (from ``since``) that lacks its right tag;
    one committed unit per ``batch`` requests. Returns the counts by version."""
    async with uow_factory() as uow:
        plan = periods(await _versions(uow, layer), since)
    done, outside, by_version = 0, 0, []
    for version, start, end in plan:
        index: VersionIndex | None = None
        written, after = 0, 0
        while True:
            async with uow_factory() as uow:
                rows = (await uow.session.execute(
                    _stale(layer, version, start, end).where(ServiceRequest.id > after)
                    .order_by(ServiceRequest.id).limit(batch))).all()
                if not rows:
                    break
                if index is None:
                    index = VersionIndex(version.id, await areas_store.version_areas(uow, version.id))
                codes = index.codes_at([r.long for r in rows], [r.lat for r in rows])
                await _put(uow, [{"request_id": r.id, "layer": layer, "code": code, "version_id": version.id}
                                 for r, code in zip(rows, codes, strict=True)])
                await uow.commit()
            after = rows[-1].id
            written += len(rows)
            outside += sum(1 for c in codes if c is None)
            done += len(rows)
            if progress is not None:
                progress(done)
        by_version.append({"version": version.version, "from": start, "until": end, "requests": written})
    return {"layer": layer, "since": since, "retagged": done, "outside": outside, "versions": by_version}


# --- the worker's CLI ---------------------------------------------------------------------------


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("layer", help="the layer's code, e.g. ward")
    p.add_argument("--since", help="only requests received on or after this ISO 8601 date or time (city's zone)")
    p.add_argument("--batch", type=int, default=1000, help="requests per committed batch (default 1000)")


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        since = parse_datetime(args.since, ZoneInfo(settings.city_timezone)) if args.since else None
        if not 1 <= args.batch <= 50_000:
            raise Invalid("--batch is 1 to 50000", field="batch")
    except (ValueError, Invalid) as exc:
        print(f"refused: {getattr(exc, 'detail', exc)}", file=sys.stderr)
        return 2
    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)

    def uow() -> UnitOfWork:
        return UnitOfWork(sessions, PLUMBING)

    try:
        async with uow() as u:
            total = await stale_count(u, layer=args.layer, since=since)
        with _bar(total, args.layer) as advance:
            summary = await retag(uow, layer=args.layer, since=since, batch=args.batch, progress=advance)
    except NotFound as exc:
        print(f"refused: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    print(orjson.dumps(summary).decode())  # one line, the last
    return 0


class _bar:
    """A progress bar on a terminal (rich, to standard error); nothing when output is redirected."""

    def __init__(self, total: int, layer: str):
        self.total, self.layer = total, layer
        self.bar: Any = None

    def __enter__(self) -> Progress | None:
        if not sys.stderr.isatty():
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        bar = self.bar = Bar("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                                  TimeRemainingColumn(), transient=True)
        bar.start()
        task = bar.add_task(f"re-tagging {self.layer}", total=self.total)
        return lambda done: bar.update(task, completed=done)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


COMMANDS = (WorkerCommand("retag-areas", "tag the stored requests with a layer's areas as of each request's date",
                          _arguments, _run),)
