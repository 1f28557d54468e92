"""Escalation API shapes: ``XCreate`` / ``XUpdate`` / ``XRead``; inputs forbid unknown fields."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from citystat_common.bounds import PlausibleDate, PlausibleDatetime
from escalation.limits import check_delay

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Severity = Annotated[int, Field(ge=1, le=4, description="1 critical, 2 high, 3 medium, 4 low")]
Status = Literal["open", "acknowledged", "in_progress", "resolved", "closed"]
Resolution = Literal["fixed", "recovered", "false_positive", "accepted_risk", "duplicate"]
Unit = Literal["business_hours", "business_days", "calendar_minutes", "calendar_hours", "calendar_days"]
FunctionTag = Literal["technology", "staffing", "spending", "customer_service", "performance"]
PARTNER_ROLES = ("oit_partner", "hr_partner", "budget_partner", "stat_partner", "customer_service_officer")
# Who a ticket can be assigned as: a senior-team role or a chain level above it.
AssigneeRole = Literal["oit_partner", "hr_partner", "budget_partner", "stat_partner", "customer_service_officer",
                       "department_head", "deputy_mayor", "managing_director"]
# The role each policy level stands for (level 0: the partner matched to the indicator, or one named).
LEVEL_ROLE_NAMES: dict[int, tuple[str, ...]] = {
    0: ("partner", *PARTNER_ROLES), 1: ("department_head",), 2: ("deputy_mayor",), 3: ("managing_director",),
}


def _code(v: str) -> str:
    v = v.strip().upper()
    if not v or len(v) > 40 or not v.replace("_", "").isalnum():
        raise ValueError("must be a department code: letters, digits and _")
    return v


def _aware(v: datetime | None) -> datetime | None:
    if v is not None and v.tzinfo is None:
        raise ValueError("must carry a timezone, e.g. 2026-11-24T10:00:00Z")
    return v


Code = Annotated[str, AfterValidator(_code)]
Aware = Annotated[PlausibleDatetime, AfterValidator(_aware)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- policies --------------------------------------------------------------------------------


class Delay(Strict):
    amount: float = Field(gt=0, le=10_000)
    unit: Unit

    @model_validator(mode="after")
    def _plausible(self) -> Delay:
        check_delay(self.amount, self.unit)
        return self


class PolicyLevel(Strict):
    level: int = Field(ge=0, le=3, description="0 partner, 1 department head, 2 deputy mayor, 3 managing director")
    role: str = Field(max_length=40)
    condition: Literal["not_acknowledged", "not_resolved"]
    delays: dict[Literal["1", "2", "3", "4"], Delay] = Field(description="per severity: how long at this level")
    repeat: int = Field(0, ge=0, le=20, description="reminders at this level before moving up")

    @field_validator("role")
    @classmethod
    def _role(cls, v: str, info: ValidationInfo) -> str:
        allowed = LEVEL_ROLE_NAMES.get(info.data.get("level", -1))
        if allowed is not None and v not in allowed:
            raise ValueError(f"level {info.data['level']} is the {' or '.join(allowed)} role, not {v!r}")
        return v


class PolicyIn(Strict):
    description: str | None = Field(None, max_length=500)
    is_default: bool = False
    departments: list[Code] = Field(default_factory=list)
    levels: list[PolicyLevel] = Field(min_length=1)
    ack_timeout: Delay | None = Field(None, description="an acknowledgement older than this returns the ticket to open")
    resolve_on_recovery: bool = False

    @model_validator(mode="after")
    def _levels(self) -> PolicyIn:
        numbers = [lv.level for lv in self.levels]
        if len(set(numbers)) != len(numbers):
            raise ValueError("each level appears once")
        if 0 not in numbers:
            raise ValueError("level 0 (the partner) is required")
        for lv in self.levels:
            if set(lv.delays) != {"1", "2", "3", "4"}:
                raise ValueError(f"level {lv.level}: a delay for each severity 1..4 is required")
        return self


class PolicyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    description: str | None
    is_default: bool
    departments: list[str]
    levels: list[dict[str, Any]]
    ack_timeout: dict[str, Any] | None
    resolve_on_recovery: bool
    created_at: datetime
    updated_at: datetime


# --- tickets ---------------------------------------------------------------------------------


class PersonIn(Strict):
    person_id: str = Field(min_length=1, max_length=36)
    name: Short
    title: str | None = Field(None, max_length=200)


class ManualFlag(Strict):
    department_code: Code
    title: Short
    reason: Text = Field(description="why staff flag this: the data does not speak for itself")
    severity: Severity | None = None
    indicator_id: str | None = Field(None, max_length=100)
    indicator_code: str | None = Field(None, max_length=100)
    function_tag: FunctionTag = "performance"
    description: str | None = Field(None, max_length=5000)


class SeverityChange(Strict):
    severity: Severity
    reason: Text


class Note(Strict):
    text: Text


class Comment(Strict):
    note: str | None = Field(None, max_length=2000)


class Resolve(Strict):
    reason: Resolution
    note: str | None = Field(None, max_length=2000)
    duplicate_of: str | None = Field(None, max_length=36, description="with reason=duplicate: the ticket kept")


class Assign(Strict):
    assignee: PersonIn
    role: AssigneeRole | None = None
    reason: Text


class MuteIn(Strict):
    until: Aware
    reason: Text


class DepartmentMuteIn(MuteIn):
    department_code: Code


class LinkIn(Strict):
    other_ticket_id: str = Field(min_length=1, max_length=36)
    kind: Literal["duplicates", "related"]


class ActionIn(Strict):
    description: Text
    owner: Short | None = Field(None, description="the owner's name; or owner_person_id")
    owner_person_id: str | None = Field(None, max_length=36, description="a directory person: mailed when it falls due")
    due_date: PlausibleDate | None = None
    status: Literal["planned", "in_progress", "done", "cancelled"] = "planned"


class ActionUpdate(Strict):
    description: Text | None = None
    owner: Short | None = None
    due_date: PlausibleDate | None = None
    status: Literal["planned", "in_progress", "done", "cancelled"] | None = None


class MilestoneIn(Strict):
    title: Short
    due_date: PlausibleDate | None = None


class MilestoneUpdate(Strict):
    title: Short | None = None
    due_date: PlausibleDate | None = None
    done: bool | None = None


class Promote(Strict):
    owner: Short
    goal: Text
    due_date: PlausibleDate | None = None
    title: Short | None = None
    milestones: list[MilestoneIn] = Field(default_factory=list, max_length=50)
    link_tickets: list[str] = Field(default_factory=list, max_length=100, description="more tickets to link")


class ProjectUpdate(Strict):
    owner: Short | None = None
    goal: Text | None = None
    due_date: PlausibleDate | None = None
    status: Literal["active", "on_hold", "done", "cancelled"] | None = None


class PersonOut(BaseModel):
    person_id: str
    name: str
    title: str | None = None


class ChainLinkOut(BaseModel):
    level: int
    role: str
    person: PersonOut | None = None


class TicketRead(BaseModel):
    id: str
    department_code: str
    department_name: str | None
    cluster_code: str | None
    indicator_id: str | None
    indicator_code: str | None
    episode_id: str | None
    title: str
    description: str | None
    reason: str | None
    severity: int
    status: str
    source: str
    function_tag: str
    critical: bool
    magnitude: float | None
    basis: str | None
    value: float | None
    target: float | None
    period: str | None
    breach_count: int
    assignee: PersonOut | None
    assignee_role: str | None
    routing_source: str | None
    routing_note: str | None
    level: int
    level_role: str | None
    next_escalation_at: datetime | None
    ack_expires_at: datetime | None
    muted_until: datetime | None
    mute_reason: str | None
    review_pending: bool
    resolution_reason: str | None
    project_id: str | None
    opened_by: str
    opened_at: datetime
    acknowledged_at: datetime | None
    in_progress_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    age_hours: float


class AuthorOut(BaseModel):
    """Who made a change: a person (name, email, how they signed in, directory person id when known),
    a machine key (label "key <name>") or the system."""

    kind: str
    name: str
    label: str
    email: str | None = None
    via: str | None = None
    person_id: str | None = None


class TimelineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    actor: str = Field(description="the author's label (a person's name, 'key <name>', or the system)")
    author: AuthorOut | None = Field(None, description="null on entries written before authors were recorded")
    kind: str
    text: str
    data: dict[str, Any]


class EscalationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    from_level: int
    to_level: int
    level_role: str
    reason: str
    notified: list[dict[str, Any]]
    at: datetime


class ActionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    ticket_id: str
    description: str
    owner: str
    owner_person_id: str | None = None
    due_date: date | None
    status: str
    created_by: str
    author: AuthorOut | None = None
    created_at: datetime
    updated_at: datetime


class LinkRead(BaseModel):
    other_ticket_id: str
    kind: str
    direction: Literal["outgoing", "incoming"]


class TicketDetail(TicketRead):
    chain: list[ChainLinkOut]
    timeline: list[TimelineRead]
    actions: list[ActionRead]
    escalations: list[EscalationRead]
    links: list[LinkRead]


class MuteRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    ticket_id: str | None
    department_code: str | None
    until: datetime
    reason: str
    created_by: str
    author: AuthorOut | None = None
    created_at: datetime
    cancelled_at: datetime | None


class MilestoneRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    title: str
    due_date: date | None
    done: bool
    done_at: datetime | None


class ProjectRead(BaseModel):
    id: str
    title: str
    department_code: str
    owner: str
    goal: str
    due_date: date | None
    status: str
    created_by: str
    author: AuthorOut | None = None
    created_at: datetime
    milestones: list[MilestoneRead]
    tickets: list[str]
    rollup: dict[str, Any]
