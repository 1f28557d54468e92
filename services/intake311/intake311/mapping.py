"""The mapping of a city's request export onto intake311's requests (``deploy/mappings/*.toml``).

A mapping names the CSV column of each field, translates the export's values (statuses, channels,
agencies, complaint types, closure texts) into the city's vocabularies here, and says which time
zone a timestamp without an offset is in. Everything not named becomes a request attribute, unless
excluded. Reading a mapping does no I/O beyond the file; converting a row is pure (history_import
checks the result against the catalog). The format is in the README ("How a city onboards").
"""

from __future__ import annotations

import hashlib
import math
import operator
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DETAILED = ("open", "acknowledged", "in_progress", "closed")
FIELDS = (
    "legacy_id", "requested_datetime", "updated_datetime", "closed_datetime", "expected_datetime",
    "service_code", "department_code", "status", "closure_reason", "status_notes", "channel",
    "description", "lat", "long", "address_string", "zipcode",
)
REQUIRED = ("legacy_id", "requested_datetime", "service_code")
VALUE_MAPS = ("status", "channel", "department_code", "service_code", "closure_reason")
Column = Annotated[str, Field(min_length=1, max_length=200)]
# The columns of New York's 311 open-data export, in the portal's order: the layout
# deploy/mappings/nyc-open-data.toml reads, and the one the history benchmark and tests write.
NYC_OPEN_DATA_COLUMNS = (
    "unique_key", "created_date", "closed_date", "agency", "agency_name", "complaint_type", "descriptor",
    "location_type", "incident_zip", "incident_address", "street_name", "cross_street_1", "cross_street_2",
    "intersection_street_1", "intersection_street_2", "address_type", "city", "landmark", "facility_type",
    "status", "due_date", "resolution_description", "resolution_action_updated_date", "community_board", "bbl",
    "borough", "x_coordinate_state_plane", "y_coordinate_state_plane", "open_data_channel_type",
    "park_facility_name", "park_borough", "vehicle_type", "taxi_company_borough", "taxi_pick_up_location",
    "bridge_highway_name", "bridge_highway_direction", "road_ramp", "bridge_highway_segment", "latitude",
    "longitude", "location",
)


class MappingError(ValueError):
    """The mapping file itself is wrong (not a row): nothing is imported."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    timezone: str = "UTC"  # of timestamps that carry no offset
    datetime_format: str | None = None  # strptime format; None: ISO 8601
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    encoding: str = "utf-8-sig"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v


class ClosureRule(_Strict):
    contains: Annotated[str, Field(min_length=1, max_length=200)]
    reason: Annotated[str, Field(min_length=1, max_length=40)]


class ClosureReasons(_Strict):
    """A closure text becomes a reason: the exact value in [values.closure_reason], else the first
    rule whose words it contains (case ignored), else ``default``."""

    default: str | None = None
    rules: list[ClosureRule] = Field(default_factory=list)


class Attributes(_Strict):
    exclude: list[Column] = Field(default_factory=list)  # columns not kept at all


class MappingFile(_Strict):
    source: Source = Field(default_factory=Source)
    columns: dict[str, Column]
    defaults: dict[str, str] = Field(default_factory=dict)  # a field's value when its column is empty
    values: dict[str, dict[str, str]] = Field(default_factory=dict)
    closure_reasons: ClosureReasons = Field(default_factory=ClosureReasons)
    attributes: Attributes = Field(default_factory=Attributes)

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown fields {unknown}; fields are {', '.join(FIELDS)}")
        missing = [f for f in REQUIRED if f not in v]
        if missing:
            raise ValueError(f"the mapping must name a column for {', '.join(missing)}")
        return v

    @field_validator("values")
    @classmethod
    def _known_maps(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        unknown = sorted(set(v) - set(VALUE_MAPS))
        if unknown:
            raise ValueError(f"unknown value maps {unknown}; maps are {', '.join(VALUE_MAPS)}")
        bad = sorted({s for s in v.get("status", {}).values() if s not in DETAILED})
        if bad:
            raise ValueError(f"[values.status] maps to {bad}; a status is one of {', '.join(DETAILED)}")
        return v


@dataclass
class Converted:
    """One row as intake311 stores it (service and department not yet checked against the catalog)."""

    legacy_id: str
    service_code: str
    department_code: str | None
    channel: str
    status: str
    detailed_status: str
    requested_datetime: datetime
    updated_datetime: datetime
    closed_datetime: datetime | None
    expected_datetime: datetime | None
    closure_reason: str | None
    status_notes: str | None
    description: str | None
    lat: float | None
    long: float | None
    address_string: str | None
    zipcode: str | None
    attributes: dict[str, str]


@dataclass
class Refused:
    """Why a row cannot be imported; ``unknown``: (vocabulary, value) pairs the mapping or the city lacks."""

    reasons: list[str] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)


class Mapping:
    """A loaded mapping, bound to one file's header row by ``bind``."""

    def __init__(self, doc: MappingFile, digest: str, *, channels: Sequence[str], closure_reasons: Sequence[str]):
        self.doc = doc
        self.digest = digest  # sha256 of the mapping file: an import batch is (file, mapping)
        self.tz = ZoneInfo(doc.source.timezone)
        self.channels = frozenset(channels)
        self.closure_reasons = frozenset(closure_reasons)
        self._width = 0  # cells in the header: a shorter row is padded with empty cells
        self._names: tuple[str, ...] = ()  # the mapped fields, and a getter of their cells in one call
        self._take: Callable[[Sequence[str]], tuple[str, ...]] = _cells_at([])
        self._attr_names: tuple[str, ...] = ()  # the attribute columns, likewise
        self._attr_take: Callable[[Sequence[str]], tuple[str, ...]] = _cells_at([])
        self._blank = {f: doc.defaults.get(f, "") for f in FIELDS}
        self._maps = {kind: doc.values.get(kind, {}) for kind in VALUE_MAPS}
        self._rules = [(r.contains.casefold(), r.reason) for r in doc.closure_reasons.rules]

    @classmethod
    def load(cls, path: Path, *, channels: Sequence[str], closure_reasons: Sequence[str]) -> Mapping:
        raw = path.read_bytes()
        return cls.parse(raw, channels=channels, closure_reasons=closure_reasons)

    @classmethod
    def parse(cls, raw: bytes, *, channels: Sequence[str], closure_reasons: Sequence[str]) -> Mapping:
        try:
            doc = MappingFile.model_validate(tomllib.loads(raw.decode("utf-8")))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise MappingError(f"the mapping is not TOML: {exc}") from exc
        except ValidationError as exc:
            raise MappingError("the mapping is not valid: " + "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())) from exc
        mapping = cls(doc, hashlib.sha256(raw).hexdigest(), channels=channels, closure_reasons=closure_reasons)
        mapping._check_vocabularies()
        return mapping

    def _check_vocabularies(self) -> None:
        problems = []
        for v in sorted({*self.doc.values.get("channel", {}).values(), *self._default("channel")}):
            if v not in self.channels:
                problems.append(f"channel {v!r} is not one of the city's channels ({', '.join(sorted(self.channels))})")
        reasons = {*self.doc.values.get("closure_reason", {}).values(), *(r.reason for r in self.doc.closure_reasons.rules)}
        reasons |= {self.doc.closure_reasons.default} if self.doc.closure_reasons.default else set()
        for v in sorted(reasons):
            if v not in self.closure_reasons:
                problems.append(f"closure reason {v!r} is not one of the city's ({', '.join(sorted(self.closure_reasons))})")
        if problems:
            raise MappingError("; ".join(problems))

    def _default(self, name: str) -> list[str]:
        return [self.doc.defaults[name]] if name in self.doc.defaults else []

    def bind(self, header: Sequence[str]) -> None:
        """Column positions for this file; MappingError naming every mapped column the file lacks."""
        positions = {name.strip(): i for i, name in enumerate(header)}
        missing = sorted({c for c in self.doc.columns.values() if c not in positions})
        if missing:
            raise MappingError(f"the file has no column {', '.join(repr(c) for c in missing)} (its columns: "
                               f"{', '.join(h.strip() for h in header)})")
        self._width = len(header)
        self._names = tuple(self.doc.columns)
        self._take = _cells_at([positions[c] for c in self.doc.columns.values()])
        used = set(self.doc.columns.values()) | set(self.doc.attributes.exclude)
        attributes = [(name, i) for name, i in positions.items() if name not in used]
        self._attr_names = tuple(name for name, _ in attributes)
        self._attr_take = _cells_at([i for _, i in attributes])

    def _padded(self, row: Sequence[str]) -> Sequence[str]:
        return row if len(row) >= self._width else [*row, *[""] * (self._width - len(row))]

    def _cells(self, row: Sequence[str]) -> dict[str, str]:
        """Every field's text (stripped; the field's default when empty; "" when not mapped): the
        import's inner loop, so the cells are taken in one C call and kept by one comprehension."""
        cells = self._blank.copy()
        cells.update({name: v for name, v in zip(self._names, map(str.strip, self._take(row)), strict=True) if v})
        return cells

    def _cell(self, row: Sequence[str], name: str) -> str:
        return self._cells(row)[name]

    def legacy_of(self, row: Sequence[str]) -> str:
        return self._cell(self._padded(row), "legacy_id")[:100]

    def _mapped(self, kind: str, value: str) -> str:
        return self._maps[kind].get(value, value)

    def _time(self, text: str) -> datetime:
        fmt = self.doc.source.datetime_format
        value = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.tz)
        return value.astimezone(UTC)

    def convert(self, row: Sequence[str]) -> Converted | Refused:
        """The row as a request, or every reason it cannot be one (all of them, not the first)."""
        bad = Refused()
        row = self._padded(row)
        cells = self._cells(row)
        legacy = cells["legacy_id"]
        if not legacy:
            bad.reasons.append("no legacy request number")
        elif len(legacy) > 100:
            bad.reasons.append("legacy request number longer than 100 characters")
        times: dict[str, datetime | None] = {}
        for name in ("requested_datetime", "updated_datetime", "closed_datetime", "expected_datetime"):
            text = cells[name]
            times[name] = None
            if text:
                try:
                    times[name] = self._time(text)
                except (ValueError, OverflowError):
                    bad.reasons.append(f"{name} {text!r} is not a date and time")
        requested = times["requested_datetime"]
        if requested is None and not any(r.startswith("requested_datetime") for r in bad.reasons):
            bad.reasons.append("no requested_datetime")
        service_code = self._mapped("service_code", cells["service_code"])
        if not service_code:
            bad.reasons.append("no service")
        dept_text = cells["department_code"]
        department = self._mapped("department_code", dept_text) if dept_text else None
        closed_at = times["closed_datetime"]
        status_text = cells["status"]
        if status_text:
            detailed = self._maps["status"].get(status_text) or (status_text if status_text in DETAILED else "")
            if not detailed:
                bad.unknown.append(("status", status_text))
        else:
            detailed = "closed" if closed_at else "open"
        if detailed == "closed" and closed_at is None:
            bad.reasons.append("closed without a closed_datetime")
        if detailed and detailed != "closed":
            closed_at = None  # an export's "closed date" on an open request is a planned date, not a closure
        if requested and closed_at and closed_at < requested:
            bad.reasons.append("closed before it was requested")
        channel = self._mapped("channel", cells["channel"])
        if not channel:
            bad.reasons.append("no channel (give [defaults] channel, e.g. \"unknown\")")
        elif channel not in self.channels:
            bad.unknown.append(("channel", channel))
        notes = cells["status_notes"] or None
        reason = None
        if detailed == "closed":
            reason = self._closure_reason(cells["closure_reason"])
            if reason is None:
                bad.unknown.append(("closure_reason", cells["closure_reason"]))
        lat, long = self._position(cells, bad)
        if bad.reasons or bad.unknown:
            return bad
        assert requested is not None
        updated = max(t for t in (requested, times["updated_datetime"], closed_at) if t is not None)
        return Converted(
            legacy_id=legacy, service_code=service_code, department_code=department, channel=channel,
            status="closed" if detailed == "closed" else "open", detailed_status=detailed,
            requested_datetime=requested, updated_datetime=updated, closed_datetime=closed_at,
            expected_datetime=times["expected_datetime"], closure_reason=reason, status_notes=notes,
            description=cells["description"][:4000] or None, lat=lat, long=long,
            address_string=cells["address_string"][:500] or None,
            zipcode=cells["zipcode"][:20] or None,
            attributes={name: v for name, v in zip(self._attr_names, map(str.strip, self._attr_take(row)), strict=True) if v},
        )

    def _closure_reason(self, text: str) -> str | None:
        exact = self._maps["closure_reason"].get(text)
        if exact:
            return exact
        if text in self.closure_reasons:
            return text
        folded = text.casefold()
        for contains, reason in self._rules:
            if contains in folded:
                return reason
        return self.doc.closure_reasons.default

    def _position(self, cells: dict[str, str], bad: Refused) -> tuple[float | None, float | None]:
        lat_text, long_text = cells["lat"], cells["long"]
        if not lat_text and not long_text:
            return None, None
        try:
            lat, long = float(lat_text), float(long_text)
        except ValueError:
            bad.reasons.append(f"position {lat_text!r}, {long_text!r} is not a latitude and longitude")
            return None, None
        if not (math.isfinite(lat) and math.isfinite(long) and -90 <= lat <= 90 and -180 <= long <= 180):
            bad.reasons.append(f"position {lat_text}, {long_text} is off the globe")
            return None, None
        return lat, long


def _cells_at(positions: Sequence[int]) -> Callable[[Sequence[str]], tuple[str, ...]]:
    """A getter of these cells of a row as a tuple (itemgetter gives a bare value for one position)."""
    if len(positions) >= 2:
        return operator.itemgetter(*positions)
    return lambda row: tuple(row[i] for i in positions)


def describe_unknown(kind: str) -> str:
    """Where to fix an unknown value of each kind, for the one-pass report."""
    return {
        "service_code": "services not in the catalog (create them, or map them in [values.service_code])",
        "department_code": "departments the city does not have (import them into the directory, or map them in "
                           "[values.department_code])",
        "status": "statuses the mapping does not translate ([values.status])",
        "channel": "channels not among the city's (map them in [values.channel], or add them to INTAKE311_CHANNELS)",
        "closure_reason": "closure texts with no reason ([values.closure_reason], [[closure_reasons.rules]] or "
                          "[closure_reasons] default)",
    }.get(kind, kind)

