"""Geography's SQL (issue 21): layer versions and their areas, each request's areas, address points.
The same statements on SQLite and PostgreSQL: geometry is GeoJSON text, never a database type."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from citystat_common.auth import Actor
from citystat_common.db import dialect_insert, utcnow
from citystat_common.uow import UnitOfWork
from intake311.areas import ParsedArea, VersionInfo
from intake311.models import AddressPoint, Area, AreaLayer, AreaLayerVersion, RequestArea, ServiceRequest

# --- layers --------------------------------------------------------------------------------------


async def generation(uow: UnitOfWork) -> int:
    """Changes with every load of any layer (versions are only ever added): the api processes
    compare it with the one their index was built from."""
    return int((await uow.session.execute(sa.select(sa.func.coalesce(sa.func.max(AreaLayerVersion.id), 0)))).scalar_one())


async def add_version(uow: UnitOfWork, *, layer: str, name: str | None, areas: Sequence[ParsedArea], code_property: str,
                      name_property: str, effective_from: datetime, source: str | None, actor: Actor) -> AreaLayerVersion:
    """A new version of ``layer`` (created on its first load) with its areas; the next version number."""
    existing = await uow.session.get(AreaLayer, layer)
    if existing is None:
        existing = await uow.add_if_absent(AreaLayer, {"layer": layer, "name": name or layer, "created_at": utcnow()})
    elif name:
        existing.name = name
    top = (await uow.session.execute(
        sa.select(sa.func.max(AreaLayerVersion.version)).where(AreaLayerVersion.layer == layer))).scalar()
    version = AreaLayerVersion(layer=layer, version=(top or 0) + 1, effective_from=effective_from,
                               code_property=code_property, name_property=name_property, source=source,
                               area_count=len(areas), loaded_at=utcnow(), loaded_by=actor.as_dict())
    uow.session.add(version)
    await uow.session.flush()  # its id, for the areas
    await uow.insert(Area.__table__,  # type: ignore[arg-type]
                     [{"version_id": version.id, "code": a.code, "name": a.name, "geometry": a.geojson} for a in areas])
    return version


async def layers(uow: UnitOfWork) -> list[tuple[AreaLayer, list[AreaLayerVersion]]]:
    rows = (await uow.session.execute(sa.select(AreaLayer).order_by(AreaLayer.layer))).scalars().all()
    versions = (await uow.session.execute(
        sa.select(AreaLayerVersion).order_by(AreaLayerVersion.layer, AreaLayerVersion.version))).scalars().all()
    by_layer: dict[str, list[AreaLayerVersion]] = {}
    for v in versions:
        by_layer.setdefault(v.layer, []).append(v)
    return [(layer, by_layer.get(layer.layer, [])) for layer in rows]


async def layer_names(uow: UnitOfWork) -> list[str]:
    return list((await uow.session.execute(sa.select(AreaLayer.layer).order_by(AreaLayer.layer))).scalars())


async def version_infos(uow: UnitOfWork) -> list[VersionInfo]:
    V = AreaLayerVersion
    rows = await uow.session.execute(sa.select(V.id, V.layer, V.version, V.effective_from))
    return [VersionInfo(id=i, layer=layer, version=n, effective_from=at) for i, layer, n, at in rows]


async def version_areas(uow: UnitOfWork, version_id: int) -> list[tuple[str, str]]:
    """(code, GeoJSON geometry) of a version's areas."""
    rows = await uow.session.execute(sa.select(Area.code, Area.geometry).where(Area.version_id == version_id))
    return [(c, g) for c, g in rows]


async def area_features(uow: UnitOfWork, version_id: int) -> list[tuple[str, str, str]]:
    """(code, name, GeoJSON geometry) of a version's areas, by code."""
    rows = await uow.session.execute(sa.select(Area.code, Area.name, Area.geometry)
                                     .where(Area.version_id == version_id).order_by(Area.code))
    return [(c, n, g) for c, n, g in rows]


async def area_list(uow: UnitOfWork, version_id: int) -> list[tuple[str, str]]:
    """(code, name) of a version's areas, by code."""
    rows = await uow.session.execute(sa.select(Area.code, Area.name).where(Area.version_id == version_id).order_by(Area.code))
    return [(c, n) for c, n in rows]


# --- the areas of requests -------------------------------------------------------------------------


def request_area_rows(request_id: int, tags: dict[str, tuple[int, str | None]]) -> list[dict[str, Any]]:
    """Rows of request_areas for one request: every column (a single-statement unit applies no defaults)."""
    return [{"request_id": request_id, "layer": layer, "code": code, "version_id": vid}
            for layer, (vid, code) in sorted(tags.items())]


async def areas_for(uow: UnitOfWork, ids: Sequence[int]) -> dict[int, dict[str, str | None]]:
    """Each request's area code by layer (None: outside every area of that layer)."""
    if not ids:
        return {}
    rows = await uow.session.execute(sa.select(RequestArea.request_id, RequestArea.layer, RequestArea.code)
                                     .where(RequestArea.request_id.in_(list(ids))))
    out: dict[int, dict[str, str | None]] = {}
    for rid, layer, code in rows:
        out.setdefault(rid, {})[layer] = code
    return out


def area_conditions(wanted: dict[str, list[str]]) -> list[Any]:
    """WHERE conditions on service_requests for ``area=LAYER:CODE`` filters: one IN per layer over
    the index on request_areas (layer, code, request_id)."""
    RA = RequestArea
    return [ServiceRequest.id.in_(sa.select(RA.request_id).where(RA.layer == layer, RA.code.in_(codes)))
            for layer, codes in sorted(wanted.items())]


def export_area_columns(stmt: sa.Select, layer_codes: Sequence[str]) -> sa.Select:  # type: ignore[type-arg]
    """``stmt`` (over service_requests) with one more column per layer: the request's area code."""
    for i, layer in enumerate(layer_codes):
        ra = sa.orm.aliased(RequestArea, name=f"ra{i}")
        stmt = stmt.outerjoin(ra, sa.and_(ra.request_id == ServiceRequest.id, ra.layer == layer)).add_columns(ra.code)
    return stmt


# --- address points --------------------------------------------------------------------------------


async def put_addresses(uow: UnitOfWork, rows: Sequence[dict[str, Any]], *, chunk: int = 1000) -> None:
    """Insert or replace address points by address id."""
    table: Any = AddressPoint.__table__
    for i in range(0, len(rows), chunk):
        stmt = dialect_insert(table, uow.dialect).values(list(rows[i:i + chunk]))
        stmt = stmt.on_conflict_do_update(index_elements=["address_id"], set_={
            c: getattr(stmt.excluded, c) for c in ("address", "address_key", "lat", "long", "updated_at")})
        await uow.session.execute(stmt)


async def has_addresses(uow: UnitOfWork) -> bool:
    """Whether the city loaded an address list (one index probe, not a count)."""
    return bool((await uow.session.execute(sa.select(sa.exists().select_from(AddressPoint)))).scalar())


async def address_count(uow: UnitOfWork) -> int:
    return int((await uow.session.execute(sa.select(sa.func.count()).select_from(AddressPoint))).scalar_one())


async def find_addresses(uow: UnitOfWork, *, ids: Iterable[str], keys: Iterable[str]) -> tuple[
        dict[str, tuple[float, float]], dict[str, list[tuple[str, float, float]]]]:
    """Address points by id, and by normalised address (every point with that key: two are ambiguous)."""
    ids, keys = sorted(set(ids)), sorted(set(keys))
    by_id: dict[str, tuple[float, float]] = {}
    by_key: dict[str, list[tuple[str, float, float]]] = {}
    P = AddressPoint
    if ids:
        for aid, lat, long in await uow.session.execute(sa.select(P.address_id, P.lat, P.long).where(P.address_id.in_(ids))):
            by_id[aid] = (lat, long)
    if keys:
        rows = await uow.session.execute(sa.select(P.address_key, P.address_id, P.lat, P.long)
                                         .where(P.address_key.in_(keys)).order_by(P.address_id))
        for key, aid, lat, long in rows:
            by_key.setdefault(key, []).append((aid, lat, long))
    return by_id, by_key
