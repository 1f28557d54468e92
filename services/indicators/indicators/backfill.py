"""Indicators from a city's 311 history (issue 20, "Indicators from history").

An imported batch is announced by ONE ``intake311.history.imported`` event (see architecture.md).
The consumer only records the batch to backfill (``backfill_store.enqueue``, in the event's inbox
transaction: the event is applied once); the worker's ``history_backfill`` scheduler then does the
work apart from the consumer, so a year of history neither holds the consumer past its poll
interval nor one giant transaction:

1. pages: the batch's requests are read from intake311 (``deps.intake311``, keyset pages of
   ``INDICATORS_BACKFILL_PAGE_SIZE``) and each page's facts are written with the backfill's place in
   ONE transaction (``backfill_store.store_facts``: the newer state wins, so a page written twice,
   or a live event about the same request, gives the same facts). A crash resumes after the last
   stored page.
2. figures: every period of the derived frequency from the batch's first request to today, for each
   of the batch's departments and its (department, service) pairs, computed from the facts in memory
   (``backfill_figures``, ``derived311``'s definitions) and written with ONE ``record_observations``:
   one evaluation per indicator touched, and a revision only where an ended period's figure changes
   (never one per request). Periods after the batch are included: its requests closed later, or
   still open, move their figures (closed, backlog). Then the backfill is finished.

A claim is a lease (``INDICATORS_BACKFILL_LEASE_SECONDS``, renewed each page), so two workers never
run the same batch and a worker that dies lets another take it up after the lease ends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from citystat_common.logging import get_logger
from citystat_common.uow import UnitOfWork
from indicators import backfill_store, derived311, observation_store
from indicators.backfill_figures import Line, ScopeFigures
from indicators.deps import IndicatorsDeps
from indicators.intake311_client import BatchGone, Intake311Unreachable
from indicators.models import HistoryBackfill, Indicator
from indicators.observations import ObsIn, record_observations
from indicators.periods import local_date, period_bounds_utc, periods_between
from indicators.rules import tz_of

log = get_logger(__name__)
Units = Callable[[], UnitOfWork]


async def run_backfills(units: Units, deps: IndicatorsDeps) -> int:
    """The scheduler's work: every backfill waiting, one after the other; returns those finished."""
    if deps.intake311 is None:
        return 0
    finished = 0
    while True:
        async with units() as uow:
            job = await backfill_store.claim(uow, now=deps.now(), lease_seconds=deps.settings.backfill_lease_seconds)
            await uow.commit()
        if job is None:
            return finished
        if not await run_one(units, deps, job=job):
            return finished  # intake311 away: the next round tries again
        finished += 1


async def run_one(units: Units, deps: IndicatorsDeps, *, job: HistoryBackfill) -> bool:
    """One claimed backfill to its end (False: it stopped, intake311 could not answer)."""
    assert deps.intake311 is not None
    settings = deps.settings
    batch_id, after, stored = job.batch_id, job.after, job.facts
    log.info("history_backfill_started", batch_id=batch_id, file=job.file_name, requests=job.requests,
             resumed_after=after or None)
    pages_done = job.pages_done
    while not pages_done:
        try:
            page = await deps.intake311.page(batch_id, after=after, limit=settings.backfill_page_size)
        except BatchGone:
            log.warning("history_backfill_batch_gone", batch_id=batch_id)
            async with units() as uow:
                await backfill_store.finish(uow, batch_id=batch_id, now=deps.now(), error="intake311 has no such batch")
                await uow.commit()
            return True
        except Intake311Unreachable as exc:
            log.warning("history_backfill_paused", batch_id=batch_id, error=str(exc)[:300], facts=stored)
            async with units() as uow:
                await backfill_store.release(uow, batch_id=batch_id, error=str(exc))
                await uow.commit()
            return False
        pages_done = page.next_after is None
        async with units() as uow:
            await backfill_store.store_facts(uow, page.requests)
            await backfill_store.advance(
                uow, batch_id=batch_id, after=page.last_id, facts=len(page.requests), pages_done=pages_done,
                lease_until=deps.now() + timedelta(seconds=settings.backfill_lease_seconds))
            await uow.commit()
        after = page.last_id
        stored += len(page.requests)
        log.info("history_backfill_progress", batch_id=batch_id, facts=stored, requests=job.requests)
    async with units() as uow:
        written = await recompute_history(
            uow, deps, departments=list(job.department_codes), services=list(job.service_codes),
            since=job.first_requested, now=deps.now())
        await backfill_store.finish(uow, batch_id=batch_id, now=deps.now())
        await uow.commit()
    log.info("history_backfill_finished", batch_id=batch_id, facts=stored, figures=written)
    return True


async def recompute_history(
    uow: UnitOfWork, deps: IndicatorsDeps, *, departments: list[str], services: list[str], since: datetime,
    now: datetime,
) -> int:
    """Every period from ``since`` to now of each department and of its (department, service) pairs
    among ``services``, written with one ``record_observations``; returns the values written."""
    settings = deps.settings
    tz, fy0 = tz_of(settings), settings.fiscal_year_start_month
    periods = periods_between(settings.derived_frequency, local_date(min(since, now), tz), local_date(now, tz), fy0,
                              limit=1_000_000)
    bounds = [(p, *period_bounds_utc(p, tz)) for p in periods]
    departments = sorted(set(departments))
    pairs = await backfill_store.service_scopes(uow, departments, services)
    names = await backfill_store.service_names(uow, [s for _, s in pairs])
    inds: dict[tuple[str, str | None], dict[str, Indicator]] = {}
    for dept in departments:
        inds[(dept, None)] = await derived311.ensure_indicators(uow, deps, dept=dept, service=None)
        for d, s in sorted(pairs):
            if d == dept:
                inds[(d, s)] = await derived311.ensure_indicators(uow, deps, dept=d, service=s, service_name=names.get(s))
    if uow.dialect == "postgresql":
        # as derived311.recompute: lock before the facts are read, so a live batch's figures and
        # these are written one after the other, each from the facts the other committed
        await observation_store.lock_indicators(uow, {i.id: i for m in inds.values() for i in m.values()})
    items: list[ObsIn] = []
    for dept in departments:
        facts = await backfill_store.department_facts(uow, dept)
        by_service: dict[str, list[Line]] = {}
        whole: list[Line] = []
        for req, exp, closed, fcr, dup, score, fb_at, code in facts:
            line = Line(req, exp, closed, bool(fcr), bool(dup), score, fb_at)
            whole.append(line)
            by_service.setdefault(code, []).append(line)
        scopes: list[tuple[str | None, ScopeFigures]] = [(None, ScopeFigures(whole))] + [
            (s, ScopeFigures(by_service.get(s, []))) for d, s in sorted(pairs) if d == dept]
        for service, figures in scopes:
            metrics = inds[(dept, service)]
            for p, start_at, end_at in bounds:
                values = figures.period(start_at, end_at, now)
                items.extend(ObsIn(ind, p, v) for m, ind in metrics.items() if (v := values.get(m)) is not None)
    if items:
        await record_observations(uow, deps, items=items, actor="311-derivation", source="311", now=now)
    return len(items)

