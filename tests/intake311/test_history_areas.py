"""History import with boundary layers (issue 21, item 2), on SQLite and PostgreSQL: each imported
request is tagged with its area in every layer by the version in force at its own requested time
(versions start at a date in the city's zone), and a request from before a layer has no area in it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from geo_helpers import districts, wards
from intake311_helpers import intake_deps
from nyc_export import nyc_row, write_nyc_csv

from citystat_common.auth import Actor
from intake311.areas_import import import_layer
from intake311.config import Settings
from intake311.history_import import run_import
from intake311.mapping import Mapping
from intake311.models import PLUMBING, AreaLayerVersion, Department, RequestArea, Service, ServiceRequest

NYC_MAPPING = Path(__file__).resolve().parents[2] / "deploy" / "mappings" / "nyc-open-data.toml"
NY = ZoneInfo("America/New_York")
ACTOR = Actor(kind="key", name="import test")
IN_W1, IN_HOLE = (39.92, -75.17), (39.975, -75.145)


async def _catalog(uow_factory) -> None:
    async with uow_factory() as uow:
        uow.session.add(Department(code="NYPD", name="Police"))
        await uow.session.flush()
        uow.session.add(Service(service_code="Noise - Residential", service_name="Noise - Residential",
                                department_code="NYPD", sla_amount=5, sla_unit="calendar_days", calendar_code="CITY",
                                attributes=[]))
        await uow.commit()


async def _layer(uow_factory, layer: str, doc: dict, code: str, name: str, starts: datetime) -> None:
    async with uow_factory() as uow:
        await import_layer(uow, layer=layer, doc=doc, code_property=code, name_property=name, starts=starts,
                           actor=ACTOR, extent=None)
        await uow.commit()


def _row(key: int, created: str, where: tuple[float, float] | None):
    lat, long = where if where else (None, None)
    return nyc_row(key, created=created, status="Open", lat=lat, long=long)


async def test_imported_requests_are_tagged_as_of_their_own_dates(uow_factory, tmp_path):
    await _catalog(uow_factory)
    renamed = wards()
    renamed["features"][0]["properties"]["WARD"] = "W1-NEW"
    await _layer(uow_factory, "ward", wards(), "WARD", "WARD_NAME", datetime(2024, 1, 1, tzinfo=NY))
    await _layer(uow_factory, "ward", renamed, "WARD", "WARD_NAME", datetime(2024, 4, 19, tzinfo=NY))
    await _layer(uow_factory, "district", districts(), "id", "label", datetime(2024, 4, 1, tzinfo=NY))
    path = write_nyc_csv(tmp_path / "history.csv", [
        _row(2001, "2023-12-31T23:59:00.000", IN_W1),  # before any ward or district
        _row(2002, "2024-04-10T12:00:00.000", IN_W1),  # ward version 1, district
        # 23:30 in New York is already the 19th in UTC: still version 1, whose successor starts at New York's midnight
        _row(2003, "2024-04-18T23:30:00.000", IN_W1),
        _row(2004, "2024-04-19T00:00:00.000", IN_W1),  # version 2 from its first moment
        _row(2005, "2024-05-01T08:00:00.000", IN_HOLE),  # outside every ward, in district 2
        _row(2006, "2024-05-01T09:00:00.000", None),  # no position: no areas
    ])
    mapping = Mapping.parse(NYC_MAPPING.read_bytes(), channels=Settings().channels,
                            closure_reasons=Settings().closure_reasons)
    with path.open("rb") as f:
        report = await run_import(uow_factory, intake_deps(), source=f, file_name=path.name, mapping=mapping,
                                  actor=ACTOR, chunk_rows=4)  # two chunks
    assert report.rows_imported == 6, report.lines()
    async with uow_factory() as uow:
        versions = {vid: (layer, n) for vid, layer, n in await uow.session.execute(
            sa.select(AreaLayerVersion.id, AreaLayerVersion.layer, AreaLayerVersion.version))}
        rows = await uow.session.execute(
            sa.select(ServiceRequest.legacy_id, RequestArea.layer, RequestArea.code, RequestArea.version_id)
            .join(RequestArea, RequestArea.request_id == ServiceRequest.id))
        tags: dict[str, dict[str, tuple[str | None, int]]] = {}
        for legacy, layer, code, vid in rows:
            tags.setdefault(legacy, {})[layer] = (code, versions[vid][1])
        outbox = [t for (t,) in await uow.session.execute(sa.select(PLUMBING.outbox.c.event_type))]
    assert tags == {
        "2002": {"ward": ("W1", 1), "district": ("1", 1)},
        "2003": {"ward": ("W1", 1), "district": ("1", 1)},
        "2004": {"ward": ("W1-NEW", 2), "district": ("1", 1)},
        "2005": {"ward": (None, 2), "district": ("2", 1)},
    }
    assert outbox == ["intake311.history.imported"]  # still one event, no per-request storm
