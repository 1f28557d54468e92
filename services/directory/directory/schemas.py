"""Directory API shapes: ``XCreate`` / ``XUpdate`` / ``XRead``."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
)

from citystat_common.bounds import PlausibleDatetime, within_horizon
from citystat_common.codes import city_code
from citystat_common.events import FUNCTION_ROLE, SENIOR_ROLES, NotifyMode

CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]{1,39}$")


def _code(v: str) -> str:
    v = v.strip().upper()
    if not CODE_RE.match(v):
        raise ValueError("must be 2-40 characters: letters, digits and _, starting with a letter")
    return v


def _phone(v: str | None) -> str | None:
    if v is None or v == "":
        return None
    if not re.fullmatch(r"\+?[0-9 ().\-]{7,25}", v):
        raise ValueError("must be a phone number: digits, spaces, + ( ) . -, 7 to 25 characters")
    return v


def control_character(v: str) -> str | None:
    """The first character no text field may hold: NUL (PostgreSQL refuses it in text, a 500),
    other control characters and lone surrogates (unprintable, unstorable). Tab and newlines pass."""
    for ch in v:
        if ch not in "\t\n\r" and unicodedata.category(ch) in ("Cc", "Cs"):
            return ch
    return None


def check_text(v: str) -> str:
    if (ch := control_character(v)) is not None:
        raise ValueError(f"must not contain the control character {ch!r}")
    return v


Code = Annotated[str, AfterValidator(_code)]  # a cluster's code (ours: capitals, digits and _)


def _department_code(v: str) -> str:
    # the city's own department code, case kept and looked up exactly (citystat_common.codes)
    return city_code(v, what="department code", slash=False)


DeptCode = Annotated[str, AfterValidator(_department_code)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Phone = Annotated[str | None, AfterValidator(_phone)]
SeniorRole = Literal[
    "department_head", "oit_partner", "hr_partner", "budget_partner", "stat_partner", "customer_service_officer"
]
Function = Literal["technology", "staffing", "spending", "customer_service", "performance"]
assert set(SeniorRole.__args__) == set(SENIOR_ROLES)  # type: ignore[attr-defined]
assert set(Function.__args__) == set(FUNCTION_ROLE)  # type: ignore[attr-defined]



AnyRole = Literal[
    "department_head", "oit_partner", "hr_partner", "budget_partner", "stat_partner",
    "customer_service_officer", "deputy_mayor", "managing_director",
]
# An appointment is planned months ahead, not years: a later date is a typo.
StartsAt = Annotated[PlausibleDatetime, AfterValidator(within_horizon(days=731, allow_past=True))]


class Strict(BaseModel):
    """Inputs: unknown fields refused, and no control characters in any text."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _text(cls, v: Any) -> Any:
        return check_text(v) if isinstance(v, str) else v


class ClusterCreate(Strict):
    code: Code
    name: Name


class ClusterUpdate(Strict):
    name: Name | None = None


class PersonBrief(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    title: str | None = None


class ClusterRead(BaseModel):
    code: str
    name: str
    deputy_mayor: PersonBrief | None = None
    upcoming: list[Upcoming] = Field(default_factory=list, description="deputy mayors who start later")
    departments: list[str] = Field(default_factory=list)


class DepartmentCreate(Strict):
    code: DeptCode
    name: Name
    cluster: Code | None = Field(None, description="cluster code")


class DepartmentUpdate(Strict):
    name: Name | None = None
    cluster: Code | None = None
    active: bool | None = None


class DepartmentRead(BaseModel):
    id: str
    code: str
    name: str
    cluster: str | None
    cluster_name: str | None
    active: bool
    created_at: datetime
    updated_at: datetime


NOTIFY_HELP = "how escalation reaches them: a mail per ticket (immediate) or one daily digest"
DEPARTMENT_HELP = "code of the department they work in, when that is not a senior-team role (e.g. 311 staff)"


class PersonCreate(Strict):
    name: Name
    title: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    email: EmailStr | None = None
    phone: Phone = None
    department: DeptCode | None = Field(None, description=DEPARTMENT_HELP)
    notify: NotifyMode = Field("immediate", description=NOTIFY_HELP)


class PersonUpdate(Strict):
    name: Name | None = None
    title: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    email: EmailStr | None = None
    phone: Phone = None
    active: bool | None = None
    department: DeptCode | None = Field(None, description=DEPARTMENT_HELP + "; null: none")
    notify: NotifyMode | None = Field(None, description=NOTIFY_HELP)

    @field_validator("name", "active", "notify")
    @classmethod
    def _not_null(cls, v: object) -> object:
        # Runs only for fields that were sent: left out keeps the value, but a person always has
        # a name and a state, so null is refused (it was a NOT NULL violation, a 500).
        if v is None:
            raise ValueError("may be left out but not null")
        return v


class PersonRead(BaseModel):
    """``email`` and ``phone`` are personal data: null unless the caller has the ``staff`` scope."""

    id: str
    name: str
    title: str | None
    email: str | None = None
    phone: str | None = None
    active: bool
    department: str | None = Field(None, description=DEPARTMENT_HELP)
    notify: NotifyMode = Field("immediate", description=NOTIFY_HELP)


class NotifyUpdate(Strict):
    notify: NotifyMode = Field(description=NOTIFY_HELP)


class RoleHeld(BaseModel):
    role: str
    department: str | None = None
    cluster: str | None = None
    since: datetime


class MeRead(PersonRead):
    """The signed-in caller's own directory entry, with their email and the roles they hold now."""

    holds: list[RoleHeld] = Field(default_factory=list)


class ActorRead(BaseModel):
    """Who made a change: a person (name, email, signed in by bearer token or page session) or a key."""

    kind: Literal["person", "key"]
    name: str
    email: str | None = None
    via: str | None = None


class AssignmentCreate(Strict):
    person_id: str = Field(min_length=1, max_length=36)
    starts_at: StartsAt | None = Field(
        None, description="default now; must carry a timezone; a later date schedules the change (at most 2 years ahead)"
    )
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class AssignmentRead(BaseModel):
    id: int
    role: str
    department: str | None
    cluster: str | None
    person: PersonBrief
    starts_at: datetime
    ends_at: datetime | None
    reason: str | None
    created_by: str = Field(description='who recorded it: a person\'s name, or "key <name>" for a machine key')
    created_by_actor: ActorRead | None = Field(None, description="the same, in detail (email for staff); null on old rows")


class RoleHolder(BaseModel):
    role: str
    person: PersonBrief | None
    since: datetime | None = None


class Upcoming(BaseModel):
    """An assignment recorded to start later: in force from ``starts_at``."""

    role: str
    person: PersonBrief
    starts_at: datetime


class ManagingDirectorRead(RoleHolder):
    upcoming: list[Upcoming] = Field(default_factory=list)


class SeniorTeamRead(BaseModel):
    department: str
    at: datetime
    members: list[RoleHolder]
    upcoming: list[Upcoming] = Field(default_factory=list, description="assignments that start after `at`, soonest first")


class ChainLink(BaseModel):
    level: int
    role: str
    person: PersonBrief | None
    note: str | None = None


class RoutingRead(BaseModel):
    department: str
    department_name: str
    cluster: str | None
    function: str
    role: str
    responsible: PersonBrief | None
    responsible_role: str | None
    fallback: bool
    fallback_reason: str | None
    chain: list[ChainLink]


class ImportRow(Strict):
    """One row of a directory import: a department and, optionally, one role holder."""

    department_code: DeptCode
    department_name: Name
    cluster_code: Code | None = None
    cluster_name: Name | None = None
    role: AnyRole | None = None
    person_name: Name | None = None
    person_title: Annotated[str, StringConstraints(max_length=200)] | None = None
    person_email: EmailStr | None = None
    person_phone: Phone = None


class ImportReport(BaseModel):
    """``rows`` read = ``applied`` (changed something) + ``unchanged`` (already so) when ok; when not,
    nothing is stored, ``failed`` counts the rows in error and ``errors`` lists each problem (a
    row may have several). ``clusters`` ... ``assignments``: how many were created."""

    ok: bool
    rows: int
    applied: int = 0
    unchanged: int = 0
    failed: int = 0
    clusters: int = 0
    departments: int = 0
    people: int = 0
    assignments: int = 0
    errors: list[dict[str, object]] = Field(default_factory=list)


class AuditRead(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description='a person\'s name, or "key <name>" for a machine key')
    by: ActorRead | None = Field(None, description="the actor in detail; null on entries older than sign-in")
    action: str
    entity: str
    entity_id: str
    details: dict[str, object]
