"""History import (issue 20): a city's 311 export in New York's open-data layout, imported with its
original dates, status, closure text, agency, channel and legacy number; refused rows and unknown
values reported in one pass; idempotent, resumable, no per-request events, one summary event."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from intake311_helpers import intake_deps
from nyc_export import nyc_row, write_nyc_csv

from citystat_common.auth import Actor
from intake311.config import Settings
from intake311.history_import import ImportStopped, run_import
from intake311.mapping import Mapping
from intake311.models import PLUMBING, Department, ImportBatch, Service, ServiceRequest

ROOT = Path(__file__).resolve().parents[2]
NYC_MAPPING = ROOT / "deploy" / "mappings" / "nyc-open-data.toml"
ACTOR = Actor(kind="key", name="import test")
NY_TZ = "America/New_York"

# 9 rows: 5 good, 1 closed before it was created, 2 from an agency the city lacks, 1 unknown complaint type
ROWS = [
    nyc_row(1001, created="2024-04-16T03:03:15.000", closed="2024-04-16T05:10:00.000",
            resolution="The Police Department responded to the complaint and took action to fix the condition."),
    nyc_row(1002, created="2024-04-17T22:00:00.000", closed="2024-04-19T09:00:00.000",
            resolution="Officers visited.\nNo one answered the door.", landmark="PIER 17,\nSOUTH STREET"),
    nyc_row(1003, created="2024-04-18T12:00:00.000", status="In Progress", channel="ONLINE", lat=None, long=None),
    nyc_row(1004, created="2024-04-20T12:00:00.000", closed="2024-04-19T12:00:00.000", resolution="Fixed."),
    nyc_row(1005, created="2024-04-21T12:00:00.000", agency="DOITT", status="Open"),
    nyc_row(1006, created="2024-04-22T12:00:00.000", agency="DOITT", status="Open"),
    nyc_row(1007, created="2024-04-23T12:00:00.000", complaint="Abandoned Bike", agency="DSNY", status="Open"),
    nyc_row(1008, created="2024-03-01T10:00:00.000", agency="DSNY", complaint="Dirty Conditions", status="Assigned",
            channel=""),
    nyc_row(1009, created="2024-04-24T08:00:00.000", closed="2024-04-24T09:00:00.000",
            resolution="This complaint is a duplicate of a previous complaint."),
]
GOOD = {"1001", "1002", "1003", "1008", "1009"}


def nyc_mapping(extra: str = "") -> Mapping:
    settings = Settings()
    raw = NYC_MAPPING.read_bytes() + extra.encode()
    return Mapping.parse(raw, channels=settings.channels, closure_reasons=settings.closure_reasons)


async def city_catalog(uow_factory) -> None:
    async with uow_factory() as uow:
        uow.session.add_all([Department(code="NYPD", name="Police"), Department(code="DSNY", name="Sanitation"),
                             Department(code="HPD", name="Housing")])
        await uow.session.flush()
        for code, dept in (("Noise - Residential", "NYPD"), ("Dirty Conditions", "DSNY")):
            uow.session.add(Service(service_code=code, service_name=code, department_code=dept, sla_amount=5,
                                    sla_unit="calendar_days", calendar_code="CITY", attributes=[]))
        await uow.commit()


async def imported(uow_factory) -> dict[str, ServiceRequest]:
    async with uow_factory() as uow:
        rows = (await uow.session.execute(sa.select(ServiceRequest).where(ServiceRequest.legacy_id.is_not(None)))).scalars()
        found = {r.legacy_id: r for r in rows}
        uow.session.expunge_all()  # read after the unit ends
        return found


async def outbox_types(uow_factory) -> list[str]:
    async with uow_factory() as uow:
        return [t for (t,) in await uow.session.execute(sa.select(PLUMBING.outbox.c.event_type))]


async def do_import(uow_factory, path: Path, mapping: Mapping | None = None, **kw):
    with path.open("rb") as f:
        return await run_import(uow_factory, intake_deps(), source=f, file_name=path.name, mapping=mapping or nyc_mapping(),
                                actor=ACTOR, **kw)


# --- the mapping alone ----------------------------------------------------------------------------


def test_a_new_york_row_keeps_its_local_time_its_status_and_its_text():
    m = nyc_mapping()
    header = list(ROWS[0])
    m.bind(header)
    row = m.convert([ROWS[1][c] for c in header])
    assert not hasattr(row, "reasons"), row
    # 22:00 in New York in April (EDT, UTC-4) is 02:00 UTC the next day
    assert row.requested_datetime == datetime(2024, 4, 18, 2, 0, tzinfo=UTC)
    assert row.closed_datetime == datetime(2024, 4, 19, 13, 0, tzinfo=UTC)
    assert row.status == "closed" and row.closure_reason == "no_further_action"
    assert row.status_notes == "Officers visited.\nNo one answered the door."
    assert row.attributes["landmark"] == "PIER 17,\nSOUTH STREET" and row.attributes["borough"] == "MANHATTAN"
    assert "agency_name" not in row.attributes and "unique_key" not in row.attributes
    winter = m.convert([ROWS[7][c] for c in header])  # 10:00 EST, UTC-5
    assert winter.requested_datetime == datetime(2024, 3, 1, 15, 0, tzinfo=UTC)
    assert winter.channel == "unknown" and winter.detailed_status == "acknowledged" and winter.status == "open"


def test_a_row_shorter_than_the_header_reads_its_missing_cells_as_empty():
    m = nyc_mapping()
    header = list(ROWS[0])
    m.bind(header)
    cells = [ROWS[1][c] for c in header]
    cut = header.index("latitude")  # the position and everything after it missing
    full, short = m.convert(cells), m.convert(cells[:cut])
    assert not hasattr(short, "reasons"), short
    assert (short.legacy_id, short.lat, short.long, full.lat is not None) == ("1002", None, None, True)
    assert short.attributes == {k: v for k, v in full.attributes.items() if header.index(k) < cut}
    assert short.attributes["borough"] == "MANHATTAN" and short.status_notes == full.status_notes


def test_a_bad_row_gets_every_reason_at_once():
    m = nyc_mapping()
    header = list(ROWS[0])
    m.bind(header)
    bad = nyc_row(1, created="yesterday", closed="2024-01-01T00:00:00.000", status="Escalated", channel="FAX",
                  lat="north", long="-74")
    result = m.convert([bad[c] for c in header])
    assert any("'yesterday' is not a date" in r for r in result.reasons)
    assert any("not a latitude" in r for r in result.reasons)
    assert ("status", "Escalated") in result.unknown and ("channel", "FAX") in result.unknown


def test_a_mapping_naming_a_channel_the_city_lacks_is_refused_whole():
    import pytest

    from intake311.mapping import MappingError

    with pytest.raises(MappingError, match="'telegraph'"):
        Mapping.parse(NYC_MAPPING.read_bytes().replace(b'"OTHER" = "other"', b'"OTHER" = "telegraph"'),
                      channels=Settings().channels, closure_reasons=Settings().closure_reasons)


# --- into the database ----------------------------------------------------------------------------


async def test_a_dry_run_reports_refused_rows_and_unknown_values_and_writes_nothing(uow_factory, tmp_path):
    await city_catalog(uow_factory)
    path = write_nyc_csv(tmp_path / "nyc.csv", ROWS)
    report = await do_import(uow_factory, path, dry_run=True)
    lines = report.lines()
    assert lines[-1] == "5 of 9 rows would be imported"
    assert report.unknown["department_code"] == {"DOITT": 2}
    assert report.unknown["service_code"] == {"Abandoned Bike": 1}
    refused = {row: reasons for row, _, reasons in report.refused}
    assert refused[4] == ["closed before it was requested"]
    assert sorted(refused) == [4, 5, 6, 7]
    assert any("'DOITT': 2 rows" in line for line in lines)
    assert await imported(uow_factory) == {}
    async with uow_factory() as uow:
        assert (await uow.session.execute(sa.select(sa.func.count()).select_from(ImportBatch))).scalar_one() == 0


async def test_the_import_keeps_the_history_and_tells_the_indicators_once(uow_factory, tmp_path):
    await city_catalog(uow_factory)
    before = await outbox_types(uow_factory)
    path = write_nyc_csv(tmp_path / "nyc.csv", ROWS)
    report = await do_import(uow_factory, path, chunk_rows=2)
    assert report.lines()[-1] == f"5 of 9 rows imported (batch {report.batch_id})"
    rows = await imported(uow_factory)
    assert set(rows) == GOOD
    first = rows["1001"]
    assert first.requested_datetime == datetime(2024, 4, 16, 7, 3, 15, tzinfo=UTC)
    assert first.closed_datetime == datetime(2024, 4, 16, 9, 10, tzinfo=UTC)
    assert (first.status, first.closure_reason, first.channel, first.department_code) == ("closed", "fixed", "phone", "NYPD")
    assert first.expected_datetime == datetime(2024, 4, 21, 7, 3, 15, tzinfo=UTC)  # 5 calendar days
    assert first.cell is not None and first.import_batch_id == report.batch_id
    assert rows["1009"].closure_reason == "duplicate"
    assert rows["1003"].detailed_status == "in_progress" and rows["1003"].channel == "web" and rows["1003"].lat is None
    assert rows["1002"].attributes["landmark"] == "PIER 17,\nSOUTH STREET"
    assert rows["1008"].department_code == "DSNY"
    # no storm: one summary event, none per request
    events = await outbox_types(uow_factory)
    assert events[len(before):] == ["intake311.history.imported"]
    async with uow_factory() as uow:
        batch = await uow.session.get(ImportBatch, report.batch_id)
        assert batch.finished_at is not None and batch.imported_by["name"] == "import test"
        assert (batch.rows_total, batch.rows_imported, batch.rows_refused) == (9, 5, 4)
        assert batch.first_requested == datetime(2024, 3, 1, 15, 0, tzinfo=UTC)
        assert batch.last_requested == datetime(2024, 4, 24, 12, 0, tzinfo=UTC)
        payload = (await uow.session.execute(sa.select(PLUMBING.outbox.c.payload).where(
            PLUMBING.outbox.c.event_type == "intake311.history.imported"))).scalar_one()
    assert b'"requests":5' in payload and report.batch_id.encode() in payload

    # the same file and mapping again: nothing changes
    again = await do_import(uow_factory, path)
    assert again.already_finished and again.batch_id == report.batch_id
    assert set(await imported(uow_factory)) == GOOD and await outbox_types(uow_factory) == events

    # another mapping of the same file: a new batch, and every legacy number is already there
    other = await do_import(uow_factory, path, mapping=nyc_mapping("\n# another mapping\n"))
    assert other.batch_id != report.batch_id and other.rows_imported == 0 and other.rows_present == 5
    assert len(await imported(uow_factory)) == 5 and await outbox_types(uow_factory) == events


async def test_an_interrupted_import_resumes_where_it_stopped(uow_factory, tmp_path):
    await city_catalog(uow_factory)
    path = write_nyc_csv(tmp_path / "nyc.csv", ROWS)
    opened = 0

    def dies_on_the_third_unit():  # batch row, first chunk, then the process "dies"
        nonlocal opened
        opened += 1
        if opened == 3:
            raise KeyboardInterrupt
        return uow_factory()

    try:
        await do_import(dies_on_the_third_unit, path, chunk_rows=2)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the import was meant to be interrupted")
    assert len(await imported(uow_factory)) == 2
    report = await do_import(uow_factory, path, chunk_rows=2)
    assert (report.rows_resumed, report.rows_imported) == (2, 3)
    assert set(await imported(uow_factory)) == GOOD
    async with uow_factory() as uow:
        batches = (await uow.session.execute(sa.select(ImportBatch))).scalars().all()
        assert len(batches) == 1 and batches[0].rows_imported == 5 and batches[0].finished_at is not None


async def test_a_file_broken_midway_keeps_the_chunks_written_before_it(uow_factory, tmp_path):
    await city_catalog(uow_factory)
    path = write_nyc_csv(tmp_path / "nyc.csv", ROWS)
    with path.open("a", encoding="utf-8") as f:
        f.write('9999,"2024-04-25T00:00:00.000,a quote never closed\n')
    try:
        await do_import(uow_factory, path, chunk_rows=2)
    except ImportStopped as stopped:
        report = stopped.report
    else:
        raise AssertionError("a file that cannot be read to its end was meant to stop the import")
    # chunks of 2 good rows: 1001+1002 and 1003+1008 were written; 1009 waited for a second row
    assert set(await imported(uow_factory)) == {"1001", "1002", "1003", "1008"}
    assert "cannot be read past here" in report.refused[-1][2][0] and report.refused[-1][0] == len(ROWS) + 1
    async with uow_factory() as uow:
        batch = (await uow.session.execute(sa.select(ImportBatch))).scalar_one()
        assert batch.finished_at is None


async def test_the_command_line_dry_run_ends_with_the_count(uow_factory, settings, tmp_path):
    await city_catalog(uow_factory)
    path = write_nyc_csv(tmp_path / "nyc.csv", ROWS)
    env = {**os.environ, "INTAKE311_DATABASE_URL": settings.database_url, "LOG_FORMAT": "console",
           "CITY_TIMEZONE": NY_TZ}
    worker = Path(sys.executable).parent / "intake311-worker"
    done = await asyncio.to_thread(
        subprocess.run, [str(worker), "import-requests", str(path), "--mapping", str(NYC_MAPPING), "--dry-run"],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "5 of 9 rows would be imported"
    assert "  'DOITT': 2 rows" in lines and "  'Abandoned Bike': 1 rows" in lines
    assert await imported(uow_factory) == {}
    # for real, then the file is in
    done = await asyncio.to_thread(
        subprocess.run, [str(worker), "import-requests", str(path), "--mapping", str(NYC_MAPPING), "--by", "ann"],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert set(await imported(uow_factory)) == GOOD


async def test_the_admin_api_imports_an_upload(client, uow_factory, tmp_path):
    from citystat_common.testing import auth

    await city_catalog(uow_factory)
    data = write_nyc_csv(tmp_path / "nyc.csv", ROWS).read_bytes()
    files = {"file": ("nyc.csv", io.BytesIO(data), "text/csv"), "mapping": ("nyc.toml", NYC_MAPPING.read_bytes())}
    assert (await client.post("/admin/imports", files=files, headers=auth("staff"))).status_code == 403
    dry = await client.post("/admin/imports?dry_run=true", files=files, headers=auth("admin"))
    assert dry.status_code == 200, dry.text
    assert dry.json()["report"][-1] == "5 of 9 rows would be imported"
    done = await client.post("/admin/imports", files=files, headers=auth("admin"))
    assert done.status_code == 201, done.text
    batch_id = done.json()["batch_id"]
    batch = await client.get(f"/admin/imports/{batch_id}", headers=auth("staff"))
    assert batch.json()["rows_imported"] == 5 and batch.json()["imported_by"]["name"] == "admin"
    seen, after = [], 0
    while after is not None:  # keyset pages of two
        page = (await client.get(f"/admin/imports/{batch_id}/requests?after={after}&limit=2", headers=auth("staff"))).json()
        seen += page["items"]
        after = page["next_after"]
    assert sorted(r["legacy_id"] for r in seen) == sorted(GOOD)
    assert {r["service_name"] for r in seen} == {"Noise - Residential", "Dirty Conditions"}
    bad = await client.post("/admin/imports", headers=auth("admin"), files={
        "file": ("nyc.csv", io.BytesIO(data)), "mapping": ("m.toml", b"[columns]\nlegacy_id = 'unique_key'\n")})
    assert bad.status_code == 422 and "requested_datetime" in bad.text
    assert (await client.get("/admin/imports/nope/requests", headers=auth("staff"))).status_code == 404


async def test_the_admin_import_reads_the_file_off_the_event_loop(client, uow_factory, tmp_path, monkeypatch):
    """Checking rows is CPU work: the API's event loop keeps serving while a file is read."""
    import threading

    from citystat_common.testing import auth
    from intake311 import history_import

    await city_catalog(uow_factory)
    threads: set[int] = set()
    check = history_import._check

    def watched(*args, **kwargs):
        threads.add(threading.get_ident())
        return check(*args, **kwargs)

    monkeypatch.setattr(history_import, "_check", watched)
    data = write_nyc_csv(tmp_path / "nyc.csv", ROWS).read_bytes()
    files = {"file": ("nyc.csv", io.BytesIO(data), "text/csv"), "mapping": ("nyc.toml", NYC_MAPPING.read_bytes())}
    r = await client.post("/admin/imports?dry_run=true", files=files, headers=auth("admin"))
    assert r.status_code == 200, r.text
    assert threads and threading.get_ident() not in threads
