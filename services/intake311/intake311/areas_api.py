"""Geography admin API (issue 21, scope 311:admin; RFC 9457 problem details): boundary layers and
their versions, and the city's address list. Thin: the rules are in areas_import / areas."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import IntegrityError

from citystat_common.auth import Principal, require_scope
from citystat_common.db import utcnow
from citystat_common.errors import Conflict, Invalid, NotFound
from citystat_common.logging import get_logger
from citystat_common.web import ReadUoW, UoW
from intake311 import areas_import, areas_store
from intake311.areas import Extent, VersionInfo, in_force
from intake311.areas_schemas import (
    AddressesImported,
    AreaRead,
    LayerRead,
    LayerVersionCreate,
    LayerVersionCreated,
    LayerVersionRead,
)
from intake311.deps import get_deps, get_front_door
from intake311.models import AreaLayer, AreaLayerVersion
from intake311.schemas import ActorRead

log = get_logger(__name__)
router = APIRouter(tags=["geography admin"])
Admin = Annotated[Principal, require_scope("311:admin")]
MAX_ADDRESS_FILE = 200 * 1024 * 1024


def _extent(request: Request) -> Extent | None:
    return Extent.parse(get_deps(request).settings.city_extent)


def _areas_changed(request: Request) -> None:
    """This process tags requests from memory: look again at once (other processes within seconds)."""
    get_front_door(request).areas.invalidate()


def _layer_read(layer: AreaLayer, versions: list[AreaLayerVersion], areas: list[tuple[str, str]] | None = None) -> LayerRead:
    now = utcnow()
    current = in_force([VersionInfo(v.id, v.layer, v.version, v.effective_from) for v in versions], now)
    return LayerRead(
        layer=layer.layer, name=layer.name, areas=None if areas is None else [AreaRead(code=c, name=n) for c, n in areas],
        versions=[LayerVersionRead(
            version=v.version, effective_from=v.effective_from, in_force=current is not None and current.id == v.id,
            area_count=v.area_count, code_property=v.code_property, name_property=v.name_property, source=v.source,
            loaded_at=v.loaded_at, loaded_by=ActorRead(**v.loaded_by)) for v in versions],
    )


@router.get("/admin/areas", response_model=list[LayerRead], summary="Boundary layers and their versions")
async def list_layers(uow: ReadUoW, _: Admin) -> list[LayerRead]:
    return [_layer_read(layer, versions) for layer, versions in await areas_store.layers(uow)]


@router.get("/admin/areas/{layer}", response_model=LayerRead, summary="A layer, its versions and the areas in force now")
async def get_layer(layer: str, uow: ReadUoW, _: Admin) -> LayerRead:
    for found, versions in await areas_store.layers(uow):
        if found.layer == layer:
            current = in_force([VersionInfo(v.id, v.layer, v.version, v.effective_from) for v in versions], utcnow())
            areas = await areas_store.area_list(uow, current.id) if current else []
            return _layer_read(found, versions, areas)
    raise NotFound(f"no boundary layer {layer!r}", field="layer")


@router.get("/areas/{layer}.geojson", summary="A layer's areas as a GeoJSON FeatureCollection (public)",
            description="The version in force at `at` (ISO 8601; default now): each feature's properties are "
                        "`code`, `name`, `layer` and `version`. For maps and for other services (Stat by area).")
async def layer_geojson(layer: str, uow: ReadUoW, request: Request, at: str | None = None) -> Response:
    when = areas_import.effective_from(at, get_deps(request).settings.city_timezone) if at else utcnow()
    versions = [v for v in await areas_store.version_infos(uow) if v.layer == layer]
    if not versions:
        raise NotFound(f"no boundary layer {layer!r}", field="layer")
    current = in_force(versions, when)
    if current is None:
        raise NotFound(f"layer {layer!r} has no version in force at {when.isoformat()}", field="at")
    features = [{"type": "Feature", "properties": {"code": code, "name": name, "layer": layer, "version": current.version},
                 "geometry": orjson.Fragment(geometry.encode())}
                for code, name, geometry in await areas_store.area_features(uow, current.id)]
    return Response(orjson.dumps({"type": "FeatureCollection", "features": features}), media_type="application/geo+json")


@router.post("/admin/areas/{layer}", status_code=201, response_model=LayerVersionCreated,
             summary="Load a new version of a boundary layer from a GeoJSON FeatureCollection",
             description="The whole file or nothing: a 422 lists every problem by feature (not closed, self-"
                         "intersecting, outside WGS84 or the city's extent, swapped lat/long, missing code or name, "
                         "a code twice). Clockwise outer rings and overlapping areas are warnings. The version "
                         "takes effect at effective_from in every api process within INTAKE311_AREAS_CHECK_SECONDS.")
async def post_layer(layer: str, data: LayerVersionCreate, uow: UoW, who: Admin, request: Request) -> dict[str, Any]:
    settings = get_deps(request).settings
    try:
        result = await areas_import.import_layer(
            uow, layer=layer, doc=data.features, code_property=data.code_property, name_property=data.name_property,
            starts=areas_import.effective_from(data.effective_from, settings.city_timezone), actor=who.actor(),
            extent=_extent(request), name=data.name, source=data.source)
        await uow.commit()
    except IntegrityError as exc:  # another load of the same layer took the version number first
        raise Conflict(f"layer {layer!r} was being loaded by someone else at the same moment; send it again",
                       field="layer") from exc
    _areas_changed(request)
    log.info("area_layer_loaded", layer=layer, version=result["version"], areas=result["area_count"],
             by=who.actor().label)
    return result


@router.post("/admin/addresses", response_model=AddressesImported,
             summary="Load or update the city's address points (CSV: address_id,address,lat,long)",
             description="Send the CSV as the body (text/csv, UTF-8). Every bad row is listed in a 422 and nothing "
                         "is loaded; an address_id already known is replaced.")
async def post_addresses(uow: UoW, who: Admin, request: Request) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("text/csv", "text/plain"):
        raise Invalid(f"send the address list as text/csv, not {ctype or 'no content type'!r}", field="body")
    raw = await request.body()
    if len(raw) > MAX_ADDRESS_FILE:
        raise Invalid(f"an address file is at most {MAX_ADDRESS_FILE // (1024 * 1024)} MB", field="body")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid("the address file must be UTF-8 text", field="body") from exc
    result = await areas_import.import_addresses(uow, text=text, extent=_extent(request))
    await uow.commit()
    _areas_changed(request)
    log.info("addresses_loaded", imported=result["imported"], by=who.actor().label)
    return result
