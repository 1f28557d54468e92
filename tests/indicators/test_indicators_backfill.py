"""Indicators from a city's 311 history (issue 20): a real intake311 imports a file in New York's
open-data layout; its one ``intake311.history.imported`` event goes through the indicators'
consumer (inbox) and the backfill reads the batch back from intake311's API, page by page. The
derived figures of every imported day (and month) equal those computed here from the file's rows;
replaying the event changes nothing; a backfill cut off mid-way resumes. On SQLite and PostgreSQL."""

from __future__ import annotations

import io
import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiokafka.structs import ConsumerRecord
from backfill_helpers import (
    FORMAT,
    NY,
    city_catalog,
    ended_only,
    expected_figures,
    figures,
    history_rows,
    month_start,
    ny_today,
    requests_of,
    same,
)
from nyc_export import write_nyc_csv

from citystat_common.auth import Actor
from citystat_common.db import create_engine, session_factory
from citystat_common.events import ServiceRequestData, parse_event
from citystat_common.runtime import make_consumer
from citystat_common.testing import TEST_KEY_ENTRIES, TEST_KEYS, app_client, auth
from citystat_common.uow import UnitOfWork
from indicators import backfill, backfill_store, derived311
from indicators.backfill_figures import Line, ScopeFigures
from indicators.config import Settings
from indicators.deps import IndicatorsDeps
from indicators.handlers import GROUP_ID, REQUEST_EVENTS, make_batch_handler, make_handlers
from indicators.intake311_client import ImportedPage, Intake311Imports, Intake311Unreachable
from indicators.main import create_app
from indicators.models import (
    PLUMBING,
    HistoryBackfill,
    Indicator,
    ObservationRevision,
    RequestFact,
    observations,
)
from indicators.periods import period_bounds_utc, periods_between

ROOT = Path(__file__).resolve().parents[2]
NYC_MAPPING = ROOT / "deploy" / "mappings" / "nyc-open-data.toml"
NOWHERE = "127.0.0.1:9"


class City:
    """A real intake311 (its app, for the backfill's reads) and the indicators' database and consumer."""

    def __init__(self, intake_url: str, indicators: Settings):
        self.intake_url = intake_url
        self.intake_engine = create_engine(intake_url)
        self.intake_sessions = session_factory(self.intake_engine)
        self.engine = create_engine(indicators.database_url)
        self.sessions = session_factory(self.engine)
        self.settings = indicators
        self.offset = 0
        self.intake311: Intake311Imports | None = None  # intake311's api, set once it runs

    def intake_units(self) -> UnitOfWork:
        from intake311.models import PLUMBING as INTAKE_PLUMBING

        return UnitOfWork(self.intake_sessions, INTAKE_PLUMBING)

    def units(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, PLUMBING)

    def runner(self, deps: IndicatorsDeps):
        return make_consumer(self.settings, self.engine, PLUMBING, group_id=GROUP_ID, topics=["311.requests"],
                             handlers=make_handlers(deps), batch_handler=make_batch_handler(deps),
                             batch_types=REQUEST_EVENTS)

    async def catalog(self) -> None:
        await city_catalog(self.intake_url)

    async def import_file(self, path: Path) -> ConsumerRecord:
        """The file imported by intake311; its one history event as the consumer receives it."""
        from intake311.config import Settings as IntakeSettings
        from intake311.deps import Deps as IntakeDeps
        from intake311.history_import import run_import
        from intake311.mapping import Mapping
        from intake311.models import PLUMBING as INTAKE_PLUMBING

        s = IntakeSettings(city_timezone="America/New_York")
        mapping = Mapping.parse(NYC_MAPPING.read_bytes(), channels=s.channels, closure_reasons=s.closure_reasons)
        report = await run_import(self.intake_units, IntakeDeps(s), source=io.BytesIO(path.read_bytes()),
                                  file_name=path.name, mapping=mapping, actor=Actor(kind="key", name="onboarding"),
                                  chunk_rows=500)
        assert report.rows_refused == 0, report.lines()
        async with self.intake_units() as uow:
            raw = (await uow.session.execute(sa.select(INTAKE_PLUMBING.outbox.c.payload).where(
                INTAKE_PLUMBING.outbox.c.event_type == "intake311.history.imported"))).scalars().all()
        assert len(raw) == 1, "one event per batch"
        return self.record(bytes(raw[0]))

    def record(self, raw: bytes) -> ConsumerRecord:
        self.offset += 1
        env, _ = parse_event(raw)
        return ConsumerRecord("311.requests", 0, self.offset, 0, 0, env.subject.encode(), raw, None, 0, len(raw), [])

    async def observed(self) -> dict[tuple[str, object], float]:
        async with self.engine.connect() as conn:
            res = await conn.execute(sa.select(Indicator.code, observations.c.period_start, observations.c.value)
                                     .join(Indicator, Indicator.id == observations.c.indicator_id))
            return {(code, start): value for code, start, value in res}

    async def count(self, table) -> int:
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()

    async def close(self) -> None:
        await self.intake_engine.dispose()
        await self.engine.dispose()


@pytest.fixture
def indicators_settings(db_factory):
    return Settings(database_url=db_factory("indicators"), api_keys=TEST_KEY_ENTRIES, kafka_bootstrap=NOWHERE,
                    directory_url=f"http://{NOWHERE}", directory_timeout=0.5, city_timezone="America/New_York",
                    backfill_page_size=40)


@pytest.fixture
async def city(db_factory, indicators_settings):
    from intake311.config import Settings as IntakeSettings
    from intake311.main import create_app as intake_app

    intake_url = db_factory("intake311")
    c = City(intake_url, indicators_settings)
    await c.catalog()
    intake = IntakeSettings(database_url=intake_url, api_keys=TEST_KEY_ENTRIES, kafka_bootstrap=NOWHERE,
                            directory_url=f"http://{NOWHERE}", directory_timeout=0.5)
    async with app_client(intake_app(intake)) as client:
        client.headers["X-API-Key"] = TEST_KEYS["staff"]  # the backfill reads with a staff key
        c.intake311 = Intake311Imports(client, owned=False)
        yield c
    await c.close()


@pytest.mark.parametrize("frequency", ["daily", "monthly"])
async def test_imported_history_gives_the_files_figures_and_a_replay_changes_nothing(city, tmp_path, frequency):
    # pages of 40 (executemany), or one page of all (COPY on PostgreSQL)
    city.settings = settings = city.settings.model_copy(update={
        "derived_frequency": frequency, "backfill_page_size": 40 if frequency == "daily" else 1000})
    deps = IndicatorsDeps(settings=settings, intake311=city.intake311)
    rows = history_rows([13, 12, 2, 1], per_month=60 if frequency == "monthly" else 15)
    record = await city.import_file(write_nyc_csv(tmp_path / "nyc-311.csv", rows))
    runner = city.runner(deps)

    assert await runner.process(record) == "processed"
    async with city.units() as uow:
        job = (await uow.session.execute(sa.select(HistoryBackfill))).scalar_one()
        assert job.finished_at is None and job.requests == len(rows)  # recorded: the worker does the work
    assert await backfill.run_backfills(city.units, deps) == 1
    assert await city.count(RequestFact) == len(rows)

    expected = expected_figures(rows, frequency)
    observed = await city.observed()
    assert same(ended_only(observed, expected), expected) == []
    # every period from the first imported one to today has its figures, the running one too
    first = min(start for _, start in expected)
    today_period = periods_between(frequency, ny_today(), ny_today(), settings.fiscal_year_start_month)[0].start
    assert {s for c, s in observed if c == "311.NYPD.opened"} == {
        p.start for p in periods_between(frequency, first, ny_today(), settings.fiscal_year_start_month)}
    assert (("311.NYPD.opened", today_period)) in observed
    # a backfill keeps no revision per request (nor any: these periods had no figures before)
    assert await city.count(ObservationRevision) == 0

    # the same event again (the broker redelivers it), and the batch announced again: nothing changes
    before = await city.observed()
    outbox = await city.count(PLUMBING.outbox)
    assert await runner.process(record) == "duplicate"
    env, _ = parse_event(record.value)
    again = city.record(env.model_copy(update={"id": str(uuid.uuid4())}).to_bytes())
    assert await runner.process(again) == "processed"
    assert await backfill.run_backfills(city.units, deps) == 0
    assert await city.observed() == before and await city.count(PLUMBING.outbox) == outbox

    if frequency == "monthly":
        # same period last year from the first day: this month's summary names the imported month
        app = create_app(settings)
        async with app_client(app) as client:
            body = (await client.get("/indicators/311.NYPD.opened/summary", headers=auth("staff"))).json()
        ago = month_start(12)
        assert body["last_year_period"] == f"{ago:%Y-%m}"
        assert body["last_year_value"] == expected[("311.NYPD.opened", ago)] > 0


class CutOff:
    """intake311 that answers ``pages`` pages, then is away."""

    def __init__(self, real, pages: int):
        self.real, self.pages = real, pages
        self.asked: list[int] = []

    async def page(self, batch_id: str, *, after: int, limit: int) -> ImportedPage:
        self.asked.append(after)
        if len(self.asked) > self.pages:
            raise Intake311Unreachable("connection refused")
        return await self.real.page(batch_id, after=after, limit=limit)


async def test_a_backfill_cut_off_resumes_after_its_last_page_and_keeps_a_newer_live_event(city, tmp_path):
    from intake311.models import ServiceRequest

    # pages of 200: COPY on PostgreSQL
    settings = city.settings.model_copy(update={"derived_frequency": "monthly", "backfill_page_size": 200})
    rows = history_rows([3, 2, 1], per_month=150, seed=7)
    record = await city.import_file(write_nyc_csv(tmp_path / "nyc-311.csv", rows))
    cut = CutOff(city.intake311, pages=1)
    deps = IndicatorsDeps(settings=settings, intake311=cut)
    assert await city.runner(deps).process(record) == "processed"
    assert await backfill.run_backfills(city.units, deps) == 0  # stopped at the second page
    async with city.units() as uow:
        job = (await uow.session.execute(sa.select(HistoryBackfill))).scalar_one()
        assert (job.facts, job.pages_done, job.finished_at, job.lease_until) == (200, False, None, None)
        assert "connection refused" in job.error
        uow.session.expunge(job)
    assert await city.count(RequestFact) == 200 and await city.observed() == {}

    # meanwhile staff close an imported request the backfill has not read yet: a live event, newer
    # than the file, which the import's older state must not undo
    async with city.intake_units() as uow:
        req = (await uow.session.execute(sa.select(ServiceRequest).where(
            ServiceRequest.id > job.after, ServiceRequest.status == "open").order_by(ServiceRequest.id).limit(1))).scalar_one()
        uow.session.expunge_all()
    closed_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    live = ServiceRequestData(
        service_request_id=str(req.id), service_code=req.service_code, service_name=req.service_code,
        department_code=req.department_code, channel=req.channel, status="closed", detailed_status="closed",
        requested_datetime=req.requested_datetime, expected_datetime=req.expected_datetime, updated_datetime=closed_at,
        closed_datetime=closed_at, change="closed")
    async with city.units() as uow:
        await derived311.apply_events(uow, deps, events=[live])
        await uow.commit()

    cut.pages = 1000
    assert await backfill.run_backfills(city.units, deps) == 1
    assert cut.asked[1] == job.after  # resumed after the last stored page, not from the start
    assert await city.count(RequestFact) == len(rows)
    async with city.units() as uow:
        assert (await uow.session.get(RequestFact, str(req.id))).closed_at == closed_at

    # the figures are the file's with that request closed now
    for row in rows:
        if row["unique_key"] == req.legacy_id:
            row.update(closed_date=closed_at.astimezone(NY).strftime(FORMAT), status="Closed")
    expected = expected_figures(rows, "monthly")
    observed = await city.observed()
    assert same(ended_only(observed, expected), expected) == []
    now_month = periods_between("monthly", ny_today(), ny_today(), settings.fiscal_year_start_month)[0].start
    reqs = [r for r in requests_of(rows) if r.agency == req.department_code]
    assert observed[(f"311.{req.department_code}.closed", now_month)] == figures(reqs, now_month, ny_today())["closed"]


# --- the bulk figures are derived311's -----------------------------------------------------


async def test_the_bulk_figures_are_those_of_compute_scope_for_every_period(indicators_settings):
    """Random facts (duplicates, feedback without a request, open and overdue ones): the backfill's
    in-memory figures equal ``derived311.compute_scope``'s queries, period by period."""
    rng = random.Random(11)
    now = datetime.now(UTC).replace(microsecond=0)
    lines: list[Line] = []
    facts = []
    for i in range(300):
        requested = now - timedelta(hours=rng.randrange(1, 24 * 120))
        expected = requested + timedelta(hours=rng.randrange(1, 24 * 10)) if rng.random() < 0.8 else None
        closed = requested + timedelta(hours=rng.randrange(0, 24 * 30)) if rng.random() < 0.6 else None
        if closed is not None and closed > now:
            closed = None
        dup = rng.random() < 0.1
        fb = (rng.randrange(1, 6), requested + timedelta(days=rng.randrange(0, 20))) if rng.random() < 0.2 else (None, None)
        if fb[1] is not None and fb[1] > now:
            fb = (None, None)
        no_request = rng.random() < 0.03  # feedback seen before its request
        facts.append(dict(service_request_id=f"r{i}", department_code="STREETS", service_code="POTHOLE",
                          service_name="Pothole", channel="phone", status="closed" if closed else "open",
                          requested_at=None if no_request else requested, expected_at=expected, closed_at=closed,
                          first_contact_resolution=rng.random() < 0.3, duplicate_of="r0" if dup else None,
                          updated_at=now, feedback_score=fb[0], feedback_at=fb[1]))
        lines.append(Line(None if no_request else requested, expected, closed, facts[-1]["first_contact_resolution"],
                          dup, fb[0], fb[1]))
    engine = create_engine(indicators_settings.database_url)
    units = session_factory(engine)
    try:
        async with UnitOfWork(units, PLUMBING) as uow:
            await uow.session.execute(sa.insert(RequestFact), facts)
            await uow.commit()
        bulk = ScopeFigures(lines)
        tz = NY
        for frequency in ("daily", "weekly", "monthly"):
            periods = periods_between(frequency, (now - timedelta(days=125)).astimezone(tz).date(),
                                      now.astimezone(tz).date(), 7)
            async with UnitOfWork(units, PLUMBING) as uow:
                for p in periods:
                    start, end = period_bounds_utc(p, tz)
                    one = await derived311.compute_scope(uow, "STREETS", None, start, end, now)
                    theirs = bulk.period(start, end, now)
                    assert set(one) == set(theirs)
                    for k, v in one.items():
                        w = theirs[k]
                        assert (v is None) == (w is None) and (v is None or math.isclose(v, w, rel_tol=1e-12)), (
                            frequency, p.label, k, v, w)
    finally:
        await engine.dispose()


async def test_a_claimed_backfill_is_one_workers_until_its_lease_ends(indicators_settings):
    from citystat_common.events import HistoryImported

    engine = create_engine(indicators_settings.database_url)
    units = session_factory(engine)
    now = datetime.now(UTC)
    batch = HistoryImported(batch_id="b-1", file_name="nyc.csv", requests=3, first_requested=now - timedelta(days=40),
                            last_requested=now - timedelta(days=2), department_codes=["NYPD"], service_codes=["Noise"],
                            imported_by="onboarding", imported_at=now)
    try:
        for _ in range(2):  # announced twice: one backfill
            async with UnitOfWork(units, PLUMBING) as uow:
                await backfill_store.enqueue(uow, data=batch, now=now)
                await uow.commit()

        async def claim(at):
            async with UnitOfWork(units, PLUMBING) as uow:
                job = await backfill_store.claim(uow, now=at, lease_seconds=60)
                await uow.commit()
                return job.batch_id if job else None

        assert await claim(now) == "b-1"
        assert await claim(now + timedelta(seconds=59)) is None  # another worker: held
        assert await claim(now + timedelta(seconds=61)) == "b-1"  # the holder died: taken up
        async with UnitOfWork(units, PLUMBING) as uow:
            await backfill_store.finish(uow, batch_id="b-1", now=now)
            await uow.commit()
        assert await claim(now + timedelta(hours=1)) is None
    finally:
        await engine.dispose()
