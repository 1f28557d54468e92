"""Loading a boundary layer version and the address list (issue 21): the service functions the admin
API and the worker's CLI share (``intake311-worker import-areas`` / ``import-addresses``). They never
commit; a file with any error is refused whole, with a report naming every bad feature or row."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from citystat_common.auth import Actor
from citystat_common.bounds import RANGE_TEXT
from citystat_common.db import create_engine, session_factory, utcnow
from citystat_common.errors import DomainError, Invalid
from citystat_common.runtime import WorkerCommand
from citystat_common.settings import ServiceSettings
from citystat_common.uow import UnitOfWork
from intake311 import addresses, areas_retag, areas_store
from intake311.area_rules import rules_left_without_area
from intake311.areas import LAYER_RE, LAYER_RULE, Extent, read_layer
from intake311.models import PLUMBING
from intake311.open311 import parse_datetime


def effective_from(text: str | None, timezone: str) -> datetime:
    """When a version starts: a date is its first moment in the city's zone; None is now."""
    if not text:
        return utcnow()
    try:
        return parse_datetime(text, ZoneInfo(timezone))
    except ValueError as exc:
        raise Invalid(f"effective_from must be an ISO 8601 date or time {RANGE_TEXT}", field="effective_from") from exc


def check_property(value: str, field: str) -> str:
    if not value.strip() or len(value) > 100:
        raise Invalid(f"{field}: the name of a property of the features, 1-100 characters", field=field)
    return value


async def import_layer(uow: UnitOfWork, *, layer: str, doc: Any, code_property: str, name_property: str,
                       starts: datetime, actor: Actor, extent: Extent | None, name: str | None = None,
                       source: str | None = None) -> dict[str, Any]:
    """A new version of ``layer`` from a GeoJSON FeatureCollection; Invalid (422) with every problem
    when the file has errors. Returns the version's summary with the report's warnings."""
    if not LAYER_RE.match(layer):
        raise Invalid(f"layer {layer[:50]!r}: {LAYER_RULE}", field="layer")
    report = read_layer(doc, code_property=check_property(code_property, "code_property"),
                        name_property=check_property(name_property, "name_property"), extent=extent)
    if report.errors:
        raise Invalid(f"layer {layer}: {len(report.errors)} problem(s) in the file, nothing was loaded; "
                      f"first: {_line(report.errors[0])}", errors=report.errors)
    version = await areas_store.add_version(
        uow, layer=layer, name=name, areas=report.areas, code_property=code_property, name_property=name_property,
        effective_from=starts, source=(source or "")[:300] or None, actor=actor)
    codes = {a.code for a in report.areas}
    stale = await areas_retag.stale_count(uow, layer=layer)
    warnings = report.warnings + await rules_left_without_area(uow, layer=layer, codes=codes)
    if stale:
        warnings.append({"feature": None, "code": None, "problem": (
            f"{stale} stored request(s) received since a version of {layer!r} took effect are not tagged by it: "
            f"run intake311-worker retag-areas {layer} (loading never re-tags by itself)")})
    return {"layer": layer, "version": version.version, "effective_from": version.effective_from,
            "area_count": version.area_count, "codes": sorted(codes), "requests_to_retag": stale,
            "warnings": warnings}


async def import_addresses(uow: UnitOfWork, *, text: str, extent: Extent | None) -> dict[str, Any]:
    """Insert or replace address points from a CSV (address_id,address,lat,long); Invalid with every
    bad row (the first 200) when any row is bad."""
    report = addresses.read_addresses(text, extent=extent, now=utcnow())
    if report.error_count:
        raise Invalid(f"{report.error_count} bad row(s) in the address file, nothing was loaded; "
                      f"first: {_line(report.errors[0])}", errors=report.errors)
    await areas_store.put_addresses(uow, report.rows)
    return {"imported": len(report.rows), "total": await areas_store.address_count(uow)}


def _line(problem: dict[str, Any]) -> str:
    where = [f"{k} {v}" for k, v in problem.items() if k != "problem" and v is not None]
    return (", ".join(where) + ": " if where else "") + str(problem["problem"])


# --- the worker's CLI ---------------------------------------------------------------------------


def _cli_actor() -> Actor:
    return Actor(kind="key", name=f"intake311-worker ({getpass.getuser()})"[:100])


async def _in_uow(settings: ServiceSettings, action: Any) -> int:
    engine = create_engine(settings.database_url)
    try:
        async with UnitOfWork(session_factory(engine), PLUMBING) as uow:
            try:
                summary = await action(uow)
            except DomainError as exc:
                print(f"refused: {exc.detail}", file=sys.stderr)
                for e in exc.errors:
                    print(f"  - {_line(e)}" if "problem" in e else f"  - {e}", file=sys.stderr)
                return 1
            await uow.commit()
    finally:
        await engine.dispose()
    print(orjson.dumps(summary).decode())  # one line, the last: the log lines come before it
    return 0


def _layer_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("layer", help="the layer's code, e.g. ward or council_district")
    p.add_argument("file", type=Path, help="a GeoJSON FeatureCollection in WGS84 (RFC 7946)")
    p.add_argument("--code-property", required=True, help="the feature property holding the area's code")
    p.add_argument("--name-property", required=True, help="the feature property holding the area's name")
    p.add_argument("--effective-from", help="ISO 8601 date or time the version takes effect (default: now)")
    p.add_argument("--name", help="the layer's display name (default: its code, or the name it has)")


async def _import_layer(settings: ServiceSettings, args: argparse.Namespace) -> int:
    try:
        doc = orjson.loads(args.file.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"refused: {args.file} could not be read as JSON: {exc}", file=sys.stderr)
        return 1
    extent = Extent.parse(getattr(settings, "city_extent", None))

    async def action(uow: UnitOfWork) -> dict[str, Any]:
        return await import_layer(uow, layer=args.layer, doc=doc, code_property=args.code_property,
                                  name_property=args.name_property, name=args.name, source=args.file.name,
                                  starts=effective_from(args.effective_from, settings.city_timezone),
                                  actor=_cli_actor(), extent=extent)

    return await _in_uow(settings, action)


def _address_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="CSV with the header address_id,address,lat,long (UTF-8)")


async def _import_addresses(settings: ServiceSettings, args: argparse.Namespace) -> int:
    try:
        text = args.file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"refused: {args.file} could not be read as UTF-8 text: {exc}", file=sys.stderr)
        return 1
    extent = Extent.parse(getattr(settings, "city_extent", None))
    return await _in_uow(settings, lambda uow: import_addresses(uow, text=text, extent=extent))


COMMANDS = (
    WorkerCommand("import-areas", "load a version of a boundary layer from a GeoJSON file", _layer_arguments,
                  _import_layer),
    WorkerCommand("import-addresses", "load or update the city's address points from a CSV file", _address_arguments,
                  _import_addresses),
)
