"""Geography's API shapes (issue 21): boundary layer versions and the address list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from intake311.schemas import ActorRead


class LayerVersionCreate(BaseModel):
    """A new version of a layer: a GeoJSON FeatureCollection (WGS84) and which properties hold each
    area's code and name."""

    model_config = ConfigDict(extra="forbid")
    code_property: str = Field(min_length=1, max_length=100, examples=["WARD"])
    name_property: str = Field(min_length=1, max_length=100, examples=["WARD_NAME"])
    effective_from: str | None = Field(None, max_length=40, description="ISO 8601 date (its first moment in the "
                                       "city's zone) or time the version takes effect; default now")
    name: str | None = Field(None, min_length=1, max_length=200, description="the layer's display name")
    source: str | None = Field(None, max_length=300, description="where the file came from")
    features: dict[str, Any] = Field(description="the GeoJSON FeatureCollection")


class Problem(BaseModel):
    feature: int | None = None  # position in the file, from 1
    code: str | None = None
    problem: str


class LayerVersionCreated(BaseModel):
    layer: str
    version: int
    effective_from: datetime
    area_count: int
    codes: list[str]
    # stored requests received while a version of the layer was in force and not tagged by it: the
    # load never re-tags (intake311-worker retag-areas LAYER does, see intake311.areas_retag)
    requests_to_retag: int = 0
    warnings: list[Problem]


class LayerVersionRead(BaseModel):
    version: int
    effective_from: datetime
    in_force: bool
    area_count: int
    code_property: str
    name_property: str
    source: str | None
    loaded_at: datetime
    loaded_by: ActorRead


class AreaRead(BaseModel):
    code: str
    name: str


class LayerRead(BaseModel):
    layer: str
    name: str
    versions: list[LayerVersionRead]
    areas: list[AreaRead] | None = None  # the version in force now (one layer's read only)


class AddressesImported(BaseModel):
    imported: int
    total: int
