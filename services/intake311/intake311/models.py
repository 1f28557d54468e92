"""intake311 tables: the service catalog (services, service levels, business calendars), a local
copy of the directory's departments, service requests, their status notes and customer feedback."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from citystat_common.db import TYPE_ANNOTATION_MAP, plumbing_tables, service_metadata, utcnow


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP

PLUMBING = plumbing_tables(Base.metadata)

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")

# Spatial grid for area searches: ~500 m cells (0.005 degrees of latitude and of longitude),
# numbered row * CELL_ROW + column. An area becomes a short list of cells that an ordinary
# B-tree index answers on PostgreSQL and SQLite alike; the exact lat/long predicates still decide.
CELL_DEG = 0.005
CELL_ROW = 200_000  # > 360 / CELL_DEG columns: the encoding is unique
MAX_AREA_CELLS = 16  # larger areas use the plain lat/long predicates (see covering_cells)


def _cell_index(value: float, bound: float) -> int:
    # clamped so that every finite coordinate has a cell (monotonic, so covering_cells stays exact);
    # the migration and the benchmark loader repeat this arithmetic in SQL, keep them in step
    return math.floor((min(bound, max(-bound, value)) + bound) / CELL_DEG)


def grid_cell(lat: float | None, long: float | None) -> int | None:
    """The grid cell of a position; None without one (or for a non-finite coordinate)."""
    if lat is None or long is None or not (math.isfinite(lat) and math.isfinite(long)):
        return None
    return _cell_index(lat, 90.0) * CELL_ROW + _cell_index(long, 180.0)


def covering_cells(min_lat: float, max_lat: float, min_long: float, max_long: float,
                   max_cells: int = MAX_AREA_CELLS) -> list[int] | None:
    """Every cell a point with min_lat <= lat <= max_lat and min_long <= long <= max_long can have
    (floor of a rounded division is monotonic, so the corner cells bound it); None when that is
    more than max_cells: a big area holds enough rows that the plain predicates do better."""
    rows = range(_cell_index(min_lat, 90.0), _cell_index(max_lat, 90.0) + 1)
    cols = range(_cell_index(min_long, 180.0), _cell_index(max_long, 180.0) + 1)
    if len(rows) * len(cols) > max_cells:
        return None
    return [r * CELL_ROW + c for r in rows for c in cols]


def cell_default(ctx: Any) -> int | None:
    """Column default: the cell of the inserted row's lat/long (Core inserts, bulk ORM inserts)."""
    params = ctx.get_current_parameters()
    return grid_cell(params.get("lat"), params.get("long"))


class Department(Base):
    """Local copy of the directory's departments, kept current from ``directory.changes``."""

    __tablename__ = "departments"
    code: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    department_id: Mapped[str | None] = mapped_column(sa.String(36))
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Calendar(Base):
    """A business calendar: working days (Monday=0), opening hours and holidays, in the city's zone."""

    __tablename__ = "calendars"
    code: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    opens: Mapped[str] = mapped_column(sa.String(5), default="08:00")
    closes: Mapped[str] = mapped_column(sa.String(5), default="17:00")
    workdays: Mapped[list[int]] = mapped_column(sa.JSON, default=lambda: [0, 1, 2, 3, 4])
    holidays: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    federal_holidays: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    changed_by: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)  # Actor.as_dict() (migration 0008)


class Service(Base):
    """An Open311 service type with its owning department, service level and attribute definitions."""

    __tablename__ = "services"
    service_code: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    service_name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    group_name: Mapped[str] = mapped_column(sa.String(100), default="")
    keywords: Mapped[str] = mapped_column(sa.String(500), default="")
    type: Mapped[str] = mapped_column(sa.String(20), default="realtime")
    department_code: Mapped[str] = mapped_column(sa.ForeignKey("departments.code"), index=True)
    sla_amount: Mapped[float] = mapped_column(sa.Float)
    sla_unit: Mapped[str] = mapped_column(sa.String(20))
    # [{attribute, value, amount, unit}]: another level for requests with that value (migration 0007)
    sla_rules: Mapped[list[dict[str, Any]] | None] = mapped_column(sa.JSON, default=list)
    # [{attribute, value, department_code, department_name}]: requests with that attribute value belong
    # to that department instead of department_code (migration 0010; the first match wins)
    department_rules: Mapped[list[dict[str, Any]] | None] = mapped_column(sa.JSON, default=list)
    # {enabled, radius_m, window_hours} (schemas.DuplicatePolicy); None: the settings' defaults
    duplicate_policy: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    calendar_code: Mapped[str] = mapped_column(sa.ForeignKey("calendars.code"), default="CITY")
    service_notice: Mapped[str | None] = mapped_column(sa.Text)
    attributes: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True)
    # Actor.as_dict() of the last catalog write (migration 0008; None before)
    changed_by: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    department: Mapped[Department] = relationship(lazy="joined")
    calendar: Mapped[Calendar] = relationship(lazy="joined")

    @property
    def metadata_flag(self) -> bool:
        return bool(self.attributes)


class ServiceRequest(Base):
    """One resident request. ``service_request_id`` on the wire is ``str(id)``: short enough to read
    over the phone. ``pending`` marks a batch-service request not yet accepted (only its token exists)."""

    __tablename__ = "service_requests"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token: Mapped[str | None] = mapped_column(sa.String(36), unique=True)
    pending: Mapped[bool] = mapped_column(default=False)
    service_code: Mapped[str] = mapped_column(sa.ForeignKey("services.service_code"))
    department_code: Mapped[str] = mapped_column(sa.String(40))
    channel: Mapped[str] = mapped_column(sa.String(20))
    status: Mapped[str] = mapped_column(sa.String(10), index=True)
    detailed_status: Mapped[str] = mapped_column(sa.String(20))
    closure_reason: Mapped[str | None] = mapped_column(sa.String(40))
    first_contact_resolution: Mapped[bool] = mapped_column(default=False)
    description: Mapped[str | None] = mapped_column(sa.Text)
    lat: Mapped[float | None] = mapped_column(sa.Float)
    long: Mapped[float | None] = mapped_column(sa.Float)
    # grid_cell(lat, long): set by the default on insert and by _set_cell when lat/long change
    cell: Mapped[int | None] = mapped_column(sa.BigInteger, default=cell_default)
    address_string: Mapped[str | None] = mapped_column(sa.String(500))
    address_id: Mapped[str | None] = mapped_column(sa.String(100))
    # duplicates.address_key(address_id or address_string): what a report without a position is matched on
    address_key: Mapped[str | None] = mapped_column(sa.String(500))
    zipcode: Mapped[str | None] = mapped_column(sa.String(20))
    media_url: Mapped[str | None] = mapped_column(sa.String(2000))
    # Personal data: never in the public Open311 GET, only through the staff API.
    email: Mapped[str | None] = mapped_column(sa.String(320))
    phone: Mapped[str | None] = mapped_column(sa.String(40))
    first_name: Mapped[str | None] = mapped_column(sa.String(100))
    last_name: Mapped[str | None] = mapped_column(sa.String(100))
    device_id: Mapped[str | None] = mapped_column(sa.String(200))
    account_id: Mapped[str | None] = mapped_column(sa.String(200))
    attributes: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    service_notice: Mapped[str | None] = mapped_column(sa.Text)
    status_notes: Mapped[str | None] = mapped_column(sa.Text)
    duplicate_of: Mapped[int | None] = mapped_column(BigId, sa.ForeignKey("service_requests.id"), index=True)
    requested_datetime: Mapped[datetime] = mapped_column(index=True)
    updated_datetime: Mapped[datetime] = mapped_column(index=True)
    expected_datetime: Mapped[datetime | None] = mapped_column(index=True)
    closed_datetime: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(sa.String(100))
    # who filed it (intake311.actors): "person" or "key", a person's email, how they came in (key,
    # bearer, session); None on rows filed before migration 0008, which keep created_by alone
    created_by_kind: Mapped[str | None] = mapped_column(sa.String(10))
    created_by_email: Mapped[str | None] = mapped_column(sa.String(320))
    created_by_via: Mapped[str | None] = mapped_column(sa.String(10))
    # SHA-256 of the token the POST returned to the reporter: only its holder may rate the request
    feedback_token_hash: Mapped[str | None] = mapped_column(sa.String(64))
    # The city's previous system's number for an imported request (looked up by GET /requests?legacy_id=),
    # and the import that brought it (migration 0009); None for requests filed here.
    legacy_id: Mapped[str | None] = mapped_column(sa.String(100))
    import_batch_id: Mapped[str | None] = mapped_column(sa.String(36))

    __table_args__ = (
        sa.Index("ix_service_requests_open_nearby", "service_code", "status", "requested_datetime"),
        sa.Index("ix_service_requests_dept_status", "department_code", "status"),
        # area searches: per cell newest first; the usual area filters are all in the index (no row
        # read to reject one)
        sa.Index("ix_service_requests_cell", "cell", "requested_datetime", "id", "status", "pending", "lat", "long"),
        # an import batch's requests in id order (the backfill read, GET /admin/imports/{id}/requests)
        sa.Index("ix_service_requests_import_batch", "import_batch_id", "id"),
        sa.Index("ix_service_requests_legacy_id", "legacy_id", unique=True),
    )

    @validates("lat", "long")
    def _set_cell(self, key: str, value: float | None) -> float | None:
        lat, long = (value, self.long) if key == "lat" else (self.lat, value)
        self.cell = grid_cell(lat, long)
        return value


class StatusNote(Base):
    """The request's history: every change with its time, author and text (``notes[]`` in Open311)."""

    __tablename__ = "status_notes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("service_requests.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(sa.String(30))
    status: Mapped[str] = mapped_column(sa.String(20))
    author: Mapped[str] = mapped_column(sa.String(100))
    # "person", "key" or "system" (intake311's own notes), the person's email, key/bearer/session;
    # None on notes written before migration 0008 (their author is a key's name or "intake311")
    author_kind: Mapped[str | None] = mapped_column(sa.String(10))
    author_email: Mapped[str | None] = mapped_column(sa.String(320))
    author_via: Mapped[str | None] = mapped_column(sa.String(10))
    text: Mapped[str | None] = mapped_column(sa.Text)
    public: Mapped[bool] = mapped_column(default=True)


class Feedback(Base):
    """The resident's satisfaction with a closed request: one score (1-5) and comment per request."""

    __tablename__ = "feedback"
    request_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("service_requests.id"), primary_key=True)
    score: Mapped[int] = mapped_column(sa.SmallInteger)
    comment: Mapped[str | None] = mapped_column(sa.Text)
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_by: Mapped[str] = mapped_column(sa.String(100))
    department_code: Mapped[str] = mapped_column(sa.String(40), index=True)


class ImportBatch(Base):
    """One import of a city's request history: which file with which mapping, by whom, when, how
    many rows and which period. A batch is the pair (file, mapping): running the same pair again
    resumes an unfinished batch and changes nothing in a finished one."""

    __tablename__ = "import_batches"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    file_name: Mapped[str] = mapped_column(sa.String(500))
    file_sha256: Mapped[str] = mapped_column(sa.String(64))
    mapping_sha256: Mapped[str] = mapped_column(sa.String(64))
    imported_by: Mapped[dict[str, Any]] = mapped_column(sa.JSON)  # Actor.as_dict()
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    rows_total: Mapped[int] = mapped_column(default=0)  # data rows in the file
    rows_imported: Mapped[int] = mapped_column(default=0)  # requests this batch wrote
    rows_present: Mapped[int] = mapped_column(default=0)  # legacy numbers already there (another batch)
    rows_refused: Mapped[int] = mapped_column(default=0)
    first_requested: Mapped[datetime | None]  # the period its requests cover
    last_requested: Mapped[datetime | None]

    __table_args__ = (sa.UniqueConstraint("file_sha256", "mapping_sha256", name="uq_import_batches_file_mapping"),)


# --- geography (issue 21, migration 0020): boundary layers, each request's areas, address points ----


class AreaLayer(Base):
    """A named set of areas that cover the city (wards, council districts...); its boundaries are versions."""

    __tablename__ = "area_layers"
    layer: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AreaLayerVersion(Base):
    """One load of a layer's boundaries, in force from ``effective_from`` until a later version's start.
    Versions are never changed or deleted: a request tagged under one can always be explained."""

    __tablename__ = "area_layer_versions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    layer: Mapped[str] = mapped_column(sa.ForeignKey("area_layers.layer"))
    version: Mapped[int] = mapped_column(sa.Integer)
    effective_from: Mapped[datetime]
    code_property: Mapped[str] = mapped_column(sa.String(100))
    name_property: Mapped[str] = mapped_column(sa.String(100))
    source: Mapped[str | None] = mapped_column(sa.String(300))  # the file's name, as given
    area_count: Mapped[int] = mapped_column(sa.Integer)
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    loaded_by: Mapped[dict[str, Any]] = mapped_column(sa.JSON)  # Actor.as_dict()

    __table_args__ = (sa.UniqueConstraint("layer", "version"),)


class Area(Base):
    """One area of a layer version: its code, name and boundary (GeoJSON geometry text, WGS84)."""

    __tablename__ = "areas"
    version_id: Mapped[int] = mapped_column(BigId, sa.ForeignKey("area_layer_versions.id"), primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    geometry: Mapped[str] = mapped_column(sa.Text)


class RequestArea(Base):
    """The area of a request in one layer, as tagged when it was received; ``code`` None: the point is
    outside every area of that layer. (layer, code, request_id) answers ``area=LAYER:CODE``."""

    __tablename__ = "request_areas"
    # no foreign keys (migration 0021): written only with their request, by version ids as read;
    # requests and versions are never deleted
    request_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    layer: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    code: Mapped[str | None] = mapped_column(sa.String(100))
    version_id: Mapped[int] = mapped_column(BigId)

    __table_args__ = (sa.Index("ix_request_areas_layer_code", "layer", "code", "request_id"),)


class AddressPoint(Base):
    """The city's address list: where an address is, for reports that give an address and no position."""

    __tablename__ = "address_points"
    address_id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    address: Mapped[str] = mapped_column(sa.String(500))
    address_key: Mapped[str] = mapped_column(sa.String(500), index=True)  # duplicates.address_key(address)
    lat: Mapped[float] = mapped_column(sa.Float)
    long: Mapped[float] = mapped_column(sa.Float)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
