"""Indicators tables: registry, targets, observations with revisions, status history,
overrides, a local copy of departments, and the 311 request facts the derived indicators
are computed from."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from citystat_common.db import TYPE_ANNOTATION_MAP, UTCDateTime, plumbing_tables, service_metadata, utcnow


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP

PLUMBING = plumbing_tables(Base.metadata)


def new_id() -> str:
    return str(uuid.uuid4())


class Department(Base):
    """Local copy of the directory's departments (from directory.department.upserted)."""

    __tablename__ = "departments"
    code: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    department_id: Mapped[str | None] = mapped_column(sa.String(36))
    name: Mapped[str] = mapped_column(sa.String(200))
    cluster_code: Mapped[str | None] = mapped_column(sa.String(40), index=True)
    cluster_name: Mapped[str | None] = mapped_column(sa.String(200))
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Indicator(Base):
    __tablename__ = "indicators"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(sa.String(120), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    department_code: Mapped[str] = mapped_column(sa.String(40), index=True)
    unit: Mapped[str] = mapped_column(sa.String(20))
    kind: Mapped[str] = mapped_column(sa.String(20))
    direction: Mapped[str] = mapped_column(sa.String(10))
    frequency: Mapped[str] = mapped_column(sa.String(10))
    additive: Mapped[bool] = mapped_column(default=True)
    critical: Mapped[bool] = mapped_column(default=False)
    function_tag: Mapped[str] = mapped_column(sa.String(30), default="performance")
    owner: Mapped[str | None] = mapped_column(sa.String(200))
    data_source: Mapped[str | None] = mapped_column(sa.String(200))
    # evaluation
    basis: Mapped[str] = mapped_column(sa.String(30), default="target")
    rules: Mapped[list[dict[str, Any]] | None] = mapped_column(sa.JSON)  # None: the city-wide defaults
    persistence: Mapped[int | None] = mapped_column()
    recovery_within: Mapped[float | None] = mapped_column()
    band_tolerance: Mapped[float] = mapped_column(default=0.05)
    history_window: Mapped[int | None] = mapped_column()
    history_k: Mapped[float | None] = mapped_column()
    grace_days: Mapped[int | None] = mapped_column()
    # formulas and links
    formula: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)  # {"op": "ratio", "numerator", "denominator"}
    linked_outcome_code: Mapped[str | None] = mapped_column(sa.String(120))
    derived_from: Mapped[str | None] = mapped_column(sa.String(20))  # "311" for automatic indicators
    active: Mapped[bool] = mapped_column(default=True)
    # current state (the latest period's evaluation and the effective, published status)
    computed_status: Mapped[str | None] = mapped_column(sa.String(8))
    status: Mapped[str] = mapped_column(sa.String(8), default="grey", index=True)
    status_reason: Mapped[str | None] = mapped_column(sa.String(300))
    status_changed_at: Mapped[datetime | None] = mapped_column()
    latest_period_start: Mapped[date | None] = mapped_column(sa.Date)
    latest_value: Mapped[float | None] = mapped_column()
    latest_reference: Mapped[float | None] = mapped_column()
    latest_miss: Mapped[float | None] = mapped_column()
    next_due_at: Mapped[datetime | None] = mapped_column(index=True)  # grey when passed with no observation
    missing: Mapped[bool] = mapped_column(default=False)
    episode_id: Mapped[str | None] = mapped_column(sa.String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class IndicatorDescription(Base):
    """Versioned description: a change closes the old text's validity and opens a new one."""

    __tablename__ = "indicator_descriptions"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    indicator_id: Mapped[str] = mapped_column(sa.ForeignKey("indicators.id"), index=True)
    text: Mapped[str] = mapped_column(sa.Text)
    valid_from: Mapped[datetime] = mapped_column(default=utcnow)
    valid_to: Mapped[datetime | None] = mapped_column()
    changed_by: Mapped[str] = mapped_column(sa.String(100))


class FormulaInput(Base):
    """Which formula indicators use which inputs: a new input value recomputes only these."""

    __tablename__ = "formula_inputs"
    formula_indicator_id: Mapped[str] = mapped_column(sa.ForeignKey("indicators.id"), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    input_indicator_id: Mapped[str] = mapped_column(sa.ForeignKey("indicators.id"), index=True)


class Target(Base):
    __tablename__ = "targets"
    indicator_id: Mapped[str] = mapped_column(sa.ForeignKey("indicators.id"), primary_key=True)
    period_start: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    # period | rest_of_year | fiscal_year | onward: what the target governs (indicators.targets)
    applies: Mapped[str] = mapped_column(sa.String(16), primary_key=True, server_default="onward")
    period_label: Mapped[str] = mapped_column(sa.String(16))
    fiscal_year: Mapped[int] = mapped_column()
    value: Mapped[float] = mapped_column()
    set_by: Mapped[str] = mapped_column(sa.String(100))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)


observations = sa.Table(
    "observations",
    Base.metadata,
    # No per-row foreign key (it doubled the cost of a bulk COPY): writes go through
    # service.record_observations, which holds the indicators locked, and a trigger refuses to
    # delete an indicator that has observations (migration 0002).
    sa.Column("indicator_id", sa.String(36), primary_key=True),
    sa.Column("period_start", sa.Date, primary_key=True),
    sa.Column("period_end", sa.Date, nullable=False),
    sa.Column("period_label", sa.String(16), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("raw_status", sa.String(8), nullable=False),
    sa.Column("miss", sa.Float, nullable=True),
    sa.Column("reference", sa.Float, nullable=True),
    sa.Column("streak", sa.Integer, nullable=False),
    sa.Column("reason", sa.String(300), nullable=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("updated_by", sa.String(100), nullable=False),
    # On PostgreSQL the column defaults to the writing transaction's time, for the bulk COPY
    # (migration 0003); every other write sets it.
    sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
)


class ObservationRevision(Base):
    """Every replaced value: who, when, old and new."""

    __tablename__ = "observation_revisions"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    indicator_id: Mapped[str] = mapped_column(sa.String(36))
    period_start: Mapped[date] = mapped_column(sa.Date)
    old_value: Mapped[float] = mapped_column()
    new_value: Mapped[float] = mapped_column()
    changed_by: Mapped[str] = mapped_column(sa.String(100))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(sa.String(20))
    __table_args__ = (sa.Index("ix_observation_revisions_key", "indicator_id", "period_start"),)


class StatusChange(Base):
    """The indicator's published status over time, with overrides and their reasons."""

    __tablename__ = "status_history"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    indicator_id: Mapped[str] = mapped_column(sa.String(36))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    period_label: Mapped[str | None] = mapped_column(sa.String(16))
    previous_status: Mapped[str | None] = mapped_column(sa.String(8))
    status: Mapped[str] = mapped_column(sa.String(8))
    value: Mapped[float | None] = mapped_column()
    target: Mapped[float | None] = mapped_column()
    magnitude: Mapped[float | None] = mapped_column()
    basis: Mapped[str] = mapped_column(sa.String(30))
    overridden: Mapped[bool] = mapped_column(default=False)
    override_reason: Mapped[str | None] = mapped_column(sa.Text)
    reason: Mapped[str | None] = mapped_column(sa.String(300))
    episode_id: Mapped[str | None] = mapped_column(sa.String(36))
    event: Mapped[str] = mapped_column(sa.String(40))
    actor: Mapped[str | None] = mapped_column(sa.String(100))  # a person's name, or "key <name>"
    actor_email: Mapped[str | None] = mapped_column(sa.String(320))
    actor_via: Mapped[str | None] = mapped_column(sa.String(10))  # key, bearer or session
    __table_args__ = (sa.Index("ix_status_history_indicator", "indicator_id", "at"),)


class Override(Base):
    """Staff judgement: a status set by an analyst, with a written reason and an expiry."""

    __tablename__ = "overrides"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    indicator_id: Mapped[str] = mapped_column(sa.ForeignKey("indicators.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(8))
    reason: Mapped[str] = mapped_column(sa.Text)
    created_by: Mapped[str] = mapped_column(sa.String(100))  # a person's name, or "key <name>"
    created_by_email: Mapped[str | None] = mapped_column(sa.String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    cleared_at: Mapped[datetime | None] = mapped_column()
    cleared_by: Mapped[str | None] = mapped_column(sa.String(100))
    cleared_by_email: Mapped[str | None] = mapped_column(sa.String(320))
    __table_args__ = (sa.Index("ix_overrides_open", "cleared_at", "expires_at"),)


class RequestFact(Base):
    """What the indicators service knows of one 311 request: the latest state seen, so late,
    out-of-order and redelivered events give exact figures."""

    __tablename__ = "request_facts"
    service_request_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    department_code: Mapped[str] = mapped_column(sa.String(40))
    service_code: Mapped[str] = mapped_column(sa.String(80))
    service_name: Mapped[str] = mapped_column(sa.String(200))
    channel: Mapped[str] = mapped_column(sa.String(40))
    status: Mapped[str] = mapped_column(sa.String(10))
    requested_at: Mapped[datetime | None] = mapped_column()  # None: feedback seen before the request
    expected_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    first_contact_resolution: Mapped[bool] = mapped_column(default=False)
    duplicate_of: Mapped[str | None] = mapped_column(sa.String(64))
    updated_at: Mapped[datetime] = mapped_column()  # the event's updated_datetime: older events are stale
    feedback_score: Mapped[int | None] = mapped_column()
    feedback_at: Mapped[datetime | None] = mapped_column()
    __table_args__ = (
        sa.Index("ix_request_facts_dept_requested", "department_code", "requested_at"),
        sa.Index("ix_request_facts_dept_closed", "department_code", "closed_at"),
        sa.Index("ix_request_facts_dept_feedback", "department_code", "feedback_at"),
    )


class RequestArea(Base):
    """A request's area in one boundary layer, as its ``311.requests`` event carried it (issue 21,
    Stat by area). Outside every area (a null code) is not kept: no figure is counted for it."""

    __tablename__ = "request_areas"
    service_request_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    layer: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    area_code: Mapped[str] = mapped_column(sa.String(100))
    __table_args__ = (sa.Index("ix_request_areas_layer_code", "layer", "area_code", "service_request_id"),)


class DepartmentStatement(Base):
    """What a department does, in its own words: the opening of its report chapter (the Mayor's
    Management Report's "what we do", services and goals) and which indicators answer each goal.
    A change closes the old version (``valid_to``) and opens a new one, with a name on it."""

    __tablename__ = "department_statements"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    department_code: Mapped[str] = mapped_column(sa.String(40))
    what_we_do: Mapped[str] = mapped_column(sa.Text)
    # [{"service": str, "goals": [{"goal": str, "indicators": [indicator code, ...]}]}]
    services: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    written_by: Mapped[str] = mapped_column(sa.String(100))
    written_by_email: Mapped[str | None] = mapped_column(sa.String(320))
    written_at: Mapped[datetime] = mapped_column(default=utcnow)
    valid_to: Mapped[datetime | None] = mapped_column()
    __table_args__ = (sa.Index("ix_department_statements_current", "department_code", "valid_to"),)


class DepartmentNarrative(Base):
    """The department's account of a report period (a month), in its own words. A new text for the
    same period supersedes the old one, which is kept (``superseded_at``)."""

    __tablename__ = "department_narratives"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    department_code: Mapped[str] = mapped_column(sa.String(40))
    period: Mapped[str] = mapped_column(sa.String(16))  # the report period, a month: 2026-11
    text: Mapped[str] = mapped_column(sa.Text)
    written_by: Mapped[str] = mapped_column(sa.String(100))
    written_by_email: Mapped[str | None] = mapped_column(sa.String(320))
    written_at: Mapped[datetime] = mapped_column(default=utcnow)
    superseded_at: Mapped[datetime | None] = mapped_column()
    __table_args__ = (sa.Index("ix_department_narratives_period", "department_code", "period", "id"),)


class TicketCopy(Base):
    """Local copy of escalation's tickets about indicators (``escalation.ticket.updated``, replaced
    per ticket; an older ``version`` never overwrites a newer one): who is on a red tile. Resolved
    and closed tickets stay as rows, so a late snapshot of their open days cannot bring them back."""

    __tablename__ = "ticket_copies"
    ticket_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    indicator_id: Mapped[str] = mapped_column(sa.String(100))
    department_code: Mapped[str] = mapped_column(sa.String(40))
    source: Mapped[str] = mapped_column(sa.String(20))  # threshold | manual
    title: Mapped[str] = mapped_column(sa.String(300))
    status: Mapped[str] = mapped_column(sa.String(20))
    level: Mapped[int] = mapped_column()
    level_role: Mapped[str | None] = mapped_column(sa.String(40))
    holder_name: Mapped[str | None] = mapped_column(sa.String(300))
    holder_email: Mapped[str | None] = mapped_column(sa.String(320))
    holder_role: Mapped[str | None] = mapped_column(sa.String(40))
    last_action: Mapped[str | None] = mapped_column(sa.Text)
    last_action_at: Mapped[datetime | None] = mapped_column()
    opened_at: Mapped[datetime] = mapped_column()
    changed_at: Mapped[datetime] = mapped_column()
    version: Mapped[int] = mapped_column(sa.BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    __table_args__ = (sa.Index("ix_ticket_copies_indicator_status", "indicator_id", "status"),)


class SeniorTeamCopy(Base):
    """Who leads each department's cluster (``directory.senior_team.changed``, one row per
    department; an older event never overwrites a newer one): the deputy mayor named on a cluster."""

    __tablename__ = "senior_teams"
    department_code: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    cluster_code: Mapped[str | None] = mapped_column(sa.String(40), index=True)
    deputy_mayor_id: Mapped[str | None] = mapped_column(sa.String(36))
    deputy_mayor_name: Mapped[str | None] = mapped_column(sa.String(300))
    deputy_mayor_title: Mapped[str | None] = mapped_column(sa.String(300))
    event_time: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class HistoryBackfill(Base):
    """One imported 311 batch to backfill (``intake311.history.imported``, once per batch): where
    the read of its requests stands (``after``: the last request id stored), who holds it, and
    when its periods were recomputed (``finished_at``)."""

    __tablename__ = "history_backfills"
    batch_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    file_name: Mapped[str] = mapped_column(sa.String(500))
    requests: Mapped[int] = mapped_column()  # what intake311 said the batch wrote
    first_requested: Mapped[datetime] = mapped_column()
    last_requested: Mapped[datetime] = mapped_column()
    department_codes: Mapped[list[str]] = mapped_column(sa.JSON)
    service_codes: Mapped[list[str]] = mapped_column(sa.JSON)
    after: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    facts: Mapped[int] = mapped_column(default=0)  # requests read and stored so far
    pages_done: Mapped[bool] = mapped_column(default=False)
    lease_until: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(sa.String(500))  # the last failure, for operators
    received_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column(index=True)
