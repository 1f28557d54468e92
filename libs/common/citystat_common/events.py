"""The event envelope of design.md and a typed payload for every event type on the bus.

Producer and consumer share these definitions: a field added here is added for both.
``type`` is ``<source>.<name>`` (``intake311.request.created``); ``subject`` is the
aggregate id and the Kafka key, so one aggregate's events stay ordered on one partition.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

SCHEMA_VERSION = 1

TOPIC_REQUESTS = "311.requests"
TOPIC_INDICATORS = "indicators.status"
TOPIC_TICKETS = "escalation.tickets"
TOPIC_DIRECTORY = "directory.changes"
TOPICS = (TOPIC_REQUESTS, TOPIC_INDICATORS, TOPIC_TICKETS, TOPIC_DIRECTORY)


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


ALL_TOPICS = TOPICS + tuple(dlq_topic(t) for t in TOPICS)


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PersonRef(Payload):
    person_id: str
    name: str
    title: str | None = None
    email: str | None = None  # where the system reaches them (notifications); None for old events


# --- intake311: 311.requests, key = service_request_id ---------------------------------


class ServiceRequestData(Payload):
    """A request's state after the change: enough for the indicators service to compute
    volumes, time to close, backlog, first-contact resolution and service-level compliance
    without calling intake311 back."""

    service_request_id: str
    service_code: str
    service_name: str
    department_code: str
    previous_department_code: str | None = None  # set on a transfer
    channel: str
    status: Literal["open", "closed"]
    detailed_status: str
    requested_datetime: datetime
    expected_datetime: datetime | None = None
    updated_datetime: datetime
    closed_datetime: datetime | None = None
    closure_reason: str | None = None
    first_contact_resolution: bool = False
    duplicate_of: str | None = None
    lat: float | None = None
    long: float | None = None
    change: str = Field("", description="what changed: created, acknowledged, transferred, reopened, ...")
    # geography (intake311 issue 21): layer -> area code at intake (None: outside every area of the
    # layer); on request.created (and .closed at first contact). None: not carried (keep what you had)
    areas: dict[str, str | None] | None = None


class RequestCreated(ServiceRequestData):
    pass


class RequestUpdated(ServiceRequestData):
    pass


class RequestClosed(ServiceRequestData):
    pass


class RequestFeedback(Payload):
    service_request_id: str
    service_code: str
    department_code: str
    score: int = Field(ge=1, le=5)
    comment: str | None = None
    submitted_at: datetime
    closed_datetime: datetime | None = None


class HistoryImported(Payload):
    """One history import is complete (key = batch_id): its requests were written WITHOUT per-request
    events, so a consumer that derives figures from requests reads them from intake311
    (GET /admin/imports/{batch_id}/requests, keyset pages) and recomputes the period they cover."""

    batch_id: str
    file_name: str
    requests: int
    first_requested: datetime
    last_requested: datetime
    department_codes: list[str]
    service_codes: list[str]
    imported_by: str
    imported_at: datetime


# --- indicators: indicators.status, key = indicator_id ---------------------------------

Status = Literal["green", "yellow", "red", "grey"]
FunctionTag = Literal["technology", "staffing", "spending", "customer_service", "performance"]


class IndicatorStatusData(Payload):
    indicator_id: str
    indicator_code: str
    indicator_name: str
    department_code: str
    period: str  # e.g. "2026-10" for a monthly indicator, "2026-W44", "FY2027-Q1"
    period_start: date
    period_end: date
    previous_status: Status | None = None
    status: Status
    value: float | None = None
    target: float | None = None
    basis: str  # target, prior_period, same_period_last_year, history
    magnitude: float | None = Field(None, description="relative size of the miss, 0.15 = 15% worse")
    overridden: bool = False
    override_reason: str | None = None
    # An override is staff judgement on the same episode (optional, so older events still parse).
    override_by: str | None = None  # who set the override (today the API key's name)
    override_expires_at: datetime | None = None
    computed_status: Status | None = None  # what the rules computed, before any override
    episode_id: str | None = None  # the open breach episode, if any
    kind: str
    critical: bool = False
    function_tag: FunctionTag = "performance"
    unit: str | None = None


class IndicatorStatusChanged(IndicatorStatusData):
    pass


class IndicatorBreached(IndicatorStatusData):
    episode_id: str  # one breach episode per indicator until recovery: the ticket dedup key


class IndicatorRecovered(IndicatorStatusData):
    episode_id: str


# --- escalation: escalation.tickets, key = ticket_id -----------------------------------


class TicketOpened(Payload):
    ticket_id: str
    department_code: str
    indicator_id: str | None = None
    episode_id: str | None = None
    title: str
    severity: int = Field(ge=1, le=4)
    source: Literal["threshold", "manual"]
    level: int = 0
    assignee: PersonRef | None = None
    assignee_role: str | None = None
    routing_note: str | None = None


class TicketEscalated(Payload):
    ticket_id: str
    department_code: str
    severity: int = Field(ge=1, le=4)
    from_level: int
    to_level: int
    level_role: str
    notified: list[PersonRef] = Field(default_factory=list)
    reason: str


class TicketAcknowledged(Payload):
    ticket_id: str
    department_code: str
    by: str
    at: datetime


class TicketResolved(Payload):
    ticket_id: str
    department_code: str
    reason: Literal["fixed", "recovered", "false_positive", "accepted_risk", "duplicate"]
    by: str
    at: datetime


class TicketPromoted(Payload):
    ticket_id: str
    department_code: str
    project_id: str
    owner: str
    due_date: date | None = None


class TicketUpdated(Payload):
    """A ticket's state after a change, whole (status, who holds it, level, the last logged action),
    so a consumer replaces its copy per ticket in one step. Published in the same transaction as
    every change of status, holder, level or action log; ``version`` grows with each change of
    the ticket (its latest timeline entry), so a redelivered or older snapshot is recognised and
    ignored. Events before this one carried none of this: they stay as they are."""

    ticket_id: str
    department_code: str
    indicator_id: str | None = None  # None: a flag opened by hand about no indicator
    source: Literal["threshold", "manual"]
    title: str
    status: Literal["open", "acknowledged", "in_progress", "resolved", "closed"]
    level: int
    level_role: str | None = None
    holder: PersonRef | None = None  # whom the ticket is assigned to now (after any reassignment)
    holder_role: str | None = None
    last_action: str | None = None  # the action log's latest entry (what was or will be done), if any
    last_action_at: datetime | None = None
    opened_at: datetime
    changed_at: datetime  # when this change happened (the service's clock)
    version: int = Field(ge=0)


# --- directory: directory.changes, key = department_id (person_id for person events) ---


class DepartmentUpserted(Payload):
    department_id: str
    code: str
    name: str
    cluster_code: str | None = None
    cluster_name: str | None = None
    active: bool = True


SeniorRole = Literal[
    "department_head", "oit_partner", "hr_partner", "budget_partner", "stat_partner", "customer_service_officer"
]
SENIOR_ROLES: tuple[str, ...] = (
    "department_head",
    "oit_partner",
    "hr_partner",
    "budget_partner",
    "stat_partner",
    "customer_service_officer",
)


# Routing (design.md): the senior-team partner that answers for a problem of each function.
FUNCTION_ROLE: dict[str, str] = {
    "technology": "oit_partner",
    "staffing": "hr_partner",
    "spending": "budget_partner",
    "customer_service": "customer_service_officer",
    "performance": "stat_partner",
}


class SeniorTeamChanged(Payload):
    """The department's whole current chain, so a consumer replaces its copy in one step."""

    department_id: str
    department_code: str
    department_name: str
    cluster_code: str | None = None
    roles: dict[str, PersonRef | None]  # every SENIOR_ROLES key; None when vacant
    deputy_mayor: PersonRef | None = None
    managing_director: PersonRef | None = None


NotifyMode = Literal["immediate", "digest"]


class PersonUpserted(Payload):
    person_id: str
    name: str
    title: str | None = None
    active: bool = True
    email: str | None = None
    notify: NotifyMode = "immediate"  # mail at once, or one daily digest outside closed hours


# --- registry --------------------------------------------------------------------------

EVENT_TYPES: dict[str, tuple[str, type[Payload]]] = {
    "intake311.request.created": (TOPIC_REQUESTS, RequestCreated),
    "intake311.request.updated": (TOPIC_REQUESTS, RequestUpdated),
    "intake311.request.closed": (TOPIC_REQUESTS, RequestClosed),
    "intake311.request.feedback": (TOPIC_REQUESTS, RequestFeedback),
    "intake311.history.imported": (TOPIC_REQUESTS, HistoryImported),
    "indicators.indicator.breached": (TOPIC_INDICATORS, IndicatorBreached),
    "indicators.indicator.recovered": (TOPIC_INDICATORS, IndicatorRecovered),
    "indicators.indicator.status_changed": (TOPIC_INDICATORS, IndicatorStatusChanged),
    "escalation.ticket.opened": (TOPIC_TICKETS, TicketOpened),
    "escalation.ticket.escalated": (TOPIC_TICKETS, TicketEscalated),
    "escalation.ticket.acknowledged": (TOPIC_TICKETS, TicketAcknowledged),
    "escalation.ticket.resolved": (TOPIC_TICKETS, TicketResolved),
    "escalation.ticket.promoted": (TOPIC_TICKETS, TicketPromoted),
    "escalation.ticket.updated": (TOPIC_TICKETS, TicketUpdated),
    "directory.department.upserted": (TOPIC_DIRECTORY, DepartmentUpserted),
    "directory.senior_team.changed": (TOPIC_DIRECTORY, SeniorTeamChanged),
    "directory.person.upserted": (TOPIC_DIRECTORY, PersonUpserted),
}
_TYPE_OF: dict[type[Payload], str] = {model: name for name, (_, model) in EVENT_TYPES.items()}


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    type: str
    source: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str
    correlation_id: str | None = None
    schema_version: int = SCHEMA_VERSION
    data: dict[str, Any]

    @field_validator("time")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("time must carry a timezone")
        return v

    @property
    def topic(self) -> str:
        return EVENT_TYPES[self.type][0]

    def payload(self) -> Payload:
        return EVENT_TYPES[self.type][1].model_validate(self.data)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


class EventRejected(Exception):
    """A message no retry can fix (bad JSON, unknown type, unknown schema version): straight to the DLQ."""


def make_event(payload: Payload, *, subject: str, correlation_id: str | None = None) -> Envelope:
    event_type = _TYPE_OF[type(payload)]
    return Envelope(
        type=event_type,
        source=event_type.split(".", 1)[0],
        subject=subject,
        correlation_id=correlation_id,
        data=payload.model_dump(mode="json"),
    )


def parse_event(raw: bytes) -> tuple[Envelope, Payload]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventRejected(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise EventRejected("envelope is not a JSON object")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise EventRejected(f"unknown schema_version {version!r}; this consumer reads {SCHEMA_VERSION}")
    try:
        envelope = Envelope.model_validate(doc)
    except ValidationError as exc:
        raise EventRejected(f"bad envelope: {exc}") from exc
    if envelope.type not in EVENT_TYPES:
        raise EventRejected(f"unknown event type {envelope.type!r}")
    try:
        return envelope, envelope.payload()
    except ValidationError as exc:
        raise EventRejected(f"bad {envelope.type} payload: {exc}") from exc
