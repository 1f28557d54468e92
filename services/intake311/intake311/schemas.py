"""Staff and admin API shapes (the non-Open311 API, with RFC 9457 problem details)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from citystat_common.bounds import PlausibleDate
from citystat_common.codes import city_code
from intake311.ownership_schemas import AreaRuleRead, AttributeRuleRead, DepartmentRule

CALENDAR_RE = re.compile(r"^[A-Z][A-Z0-9_]{1,39}$")  # calendars keep the old rule: ours, not the city's data
HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")

Datatype = Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]
Unit = Literal["business_hours", "business_days", "calendar_hours", "calendar_days"]
ServiceType = Literal["realtime", "batch", "blackbox"]


def _service_code(v: str) -> str:
    return city_code(v, what="service code")  # the city's own, case kept (citystat_common.codes)


def _dept(v: str) -> str:
    return city_code(v, what="department code", slash=False)


def _keywords(v: Any) -> Any:
    if isinstance(v, str):
        return [k.strip() for k in v.split(",") if k.strip()]
    return v


ServiceCode = Annotated[str, AfterValidator(_service_code)]
DeptCode = Annotated[str, AfterValidator(_dept)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(max_length=4000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AttributeValue(Strict):
    key: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    name: Name


# A number attribute's default bounds: beyond them a value is a typo or a probe, and a float that
# large loses integer precision in JSON (2**53); an attribute may set tighter ones.
NUMBER_LIMIT = 1e12
Bound = Annotated[float, Field(ge=-NUMBER_LIMIT, le=NUMBER_LIMIT, allow_inf_nan=False)]


class AttributeDef(Strict):
    """An Open311 service-definition attribute. ``minimum``/``maximum``: a number's bounds (default
    +-1e12); ``days_before``/``days_after``: how far a datetime may lie before or after the time it
    is reported (default: only the plausible range, 1970 to 2100)."""

    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\[\]\s]+$")]
    variable: bool = True
    datatype: Datatype = "string"
    required: bool = False
    datatype_description: Annotated[str, StringConstraints(max_length=500)] | None = None
    order: int | None = Field(None, ge=0, le=1000)
    description: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    values: list[AttributeValue] = Field(default_factory=list)
    minimum: Bound | None = None
    maximum: Bound | None = None
    days_before: int | None = Field(None, ge=0, le=36_500)
    days_after: int | None = Field(None, ge=0, le=36_500)

    @model_validator(mode="after")
    def _bounds_fit_the_type(self) -> AttributeDef:
        if (self.minimum is not None or self.maximum is not None) and self.datatype != "number":
            raise ValueError("minimum and maximum are for number attributes")
        if (self.days_before is not None or self.days_after is not None) and self.datatype != "datetime":
            raise ValueError("days_before and days_after are for datetime attributes")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError("minimum must not exceed maximum")
        return self

    @model_validator(mode="after")
    def _lists_have_values(self) -> AttributeDef:
        is_list = self.datatype in ("singlevaluelist", "multivaluelist")
        if is_list and not self.values:
            raise ValueError(f"a {self.datatype} attribute needs values")
        if not is_list and self.values:
            raise ValueError(f"a {self.datatype} attribute takes no values")
        keys = [v.key for v in self.values]
        if len(keys) != len(set(keys)):
            raise ValueError("value keys must be unique")
        return self


Amount = Annotated[float, Field(gt=0, le=10_000, allow_inf_nan=False)]


class LevelRule(Strict):
    """Requests whose ``attribute`` has ``value`` get this level instead (the first matching rule wins)."""

    attribute: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    value: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    amount: Amount
    unit: Unit


class ServiceLevel(Strict):
    """Whether the due date falls within two years on the calendar is checked when it is saved."""

    amount: Amount
    unit: Unit
    calendar: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)] = "CITY"
    rules: list[LevelRule] = Field(default_factory=list, max_length=20)


class DuplicatePolicy(Strict):
    """How new requests of a service are linked to an open one reported before: within ``radius_m``
    and ``window_hours`` (None: the service-wide settings), or never (enabled false, e.g. questions)."""

    enabled: bool = True
    radius_m: float | None = Field(None, ge=0, le=5000, allow_inf_nan=False)
    window_hours: float | None = Field(None, ge=0, le=24 * 365, allow_inf_nan=False)


def _unique_codes(attrs: list[AttributeDef] | None) -> list[AttributeDef] | None:
    if attrs is not None:
        codes = [a.code for a in attrs]
        if len(codes) != len(set(codes)):
            raise ValueError("attribute codes must be unique")
    return attrs


class _ServiceFields(Strict):
    @field_validator("keywords", mode="before", check_fields=False)
    @classmethod
    def _kw(cls, v: Any) -> Any:
        return _keywords(v)

    @field_validator("attributes", check_fields=False)
    @classmethod
    def _attrs(cls, v: list[AttributeDef] | None) -> list[AttributeDef] | None:
        return _unique_codes(v)


class ServiceCreate(_ServiceFields):
    service_code: ServiceCode
    service_name: Name
    description: Text = ""
    group: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""
    keywords: Annotated[list[Annotated[str, StringConstraints(max_length=100)]], Field(max_length=50)] = Field(default_factory=list)
    type: ServiceType = "realtime"
    department_code: DeptCode
    service_level: ServiceLevel
    service_notice: Text | None = None
    attributes: list[AttributeDef] = Field(default_factory=list, max_length=100)
    duplicates: DuplicatePolicy | None = None
    department_rules: list[DepartmentRule] = Field(default_factory=list, max_length=50)



class ServiceUpdate(_ServiceFields):
    service_name: Name | None = None
    description: Text | None = None
    group: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    keywords: list[Annotated[str, StringConstraints(max_length=100)]] | None = None
    type: ServiceType | None = None
    department_code: DeptCode | None = None
    service_level: ServiceLevel | None = None
    service_notice: Text | None = None
    attributes: list[AttributeDef] | None = None
    duplicates: DuplicatePolicy | None = None
    department_rules: list[DepartmentRule] | None = Field(None, max_length=50)
    active: bool | None = None



class ActorRead(BaseModel):
    """Who made a change: a person (name, email, signed in by page session or bearer token) or a key."""

    kind: Literal["person", "key"]
    name: str
    email: str | None = None
    via: Literal["key", "bearer", "session"] = "key"


class ServiceAdminRead(BaseModel):
    service_code: str
    service_name: str
    description: str
    group: str
    keywords: list[str]
    type: str
    metadata: bool
    department_code: str
    agency_responsible: str
    service_level: ServiceLevel
    service_level_text: str
    service_notice: str | None
    attributes: list[dict[str, Any]]
    duplicates: DuplicatePolicy | None
    # which requests another department owns, by attribute value or area (the service's owner owns the rest)
    department_rules: list[AttributeRuleRead | AreaRuleRead] = Field(default_factory=list)
    active: bool
    created_at: datetime
    updated_at: datetime
    changed_by: ActorRead | None = None  # the last catalog write's (None: before migration 0008)


class CalendarPut(Strict):
    name: Name
    opens: str = "08:00"
    closes: str = "17:00"
    workdays: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1, max_length=7)
    holidays: list[PlausibleDate] = Field(default_factory=list, max_length=500)
    federal_holidays: bool = True

    @field_validator("opens", "closes")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not HHMM.match(v):
            raise ValueError("must be HH:MM, 24-hour")
        return v

    @field_validator("workdays")
    @classmethod
    def _days(cls, v: list[int]) -> list[int]:
        if any(d < 0 or d > 6 for d in v):
            raise ValueError("workdays are 0 (Monday) to 6 (Sunday)")
        return v

    @model_validator(mode="after")
    def _order(self) -> CalendarPut:
        if self.opens >= self.closes:
            raise ValueError("opens must be before closes")
        return self


class CalendarRead(BaseModel):
    code: str
    name: str
    opens: str
    closes: str
    workdays: list[int]
    holidays: list[str]
    federal_holidays: bool
    changed_by: ActorRead | None = None


class DepartmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    code: str
    name: str
    department_id: str | None
    active: bool


# --- staff API ----------------------------------------------------------------------------------


class ActionBody(Strict):
    text: Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)] | None = None
    public: bool = True


class CloseBody(ActionBody):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=40)]  # one of INTAKE311_CLOSURE_REASONS


class TransferBody(ActionBody):
    department_code: DeptCode


class NoteBody(Strict):
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
    public: bool = True


class MergeBody(Strict):
    into: str = Field(min_length=1, max_length=20, description="service_request_id of the original request")
    text: Annotated[str, StringConstraints(max_length=4000)] | None = None


class FeedbackBody(Strict):
    feedback_token: str = Field(min_length=1, max_length=100, description="returned once by POST /requests")
    score: int = Field(ge=1, le=5)
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)] | None = None


class FeedbackRead(BaseModel):
    service_request_id: str
    score: int
    comment: str | None
    submitted_at: datetime


class NoteRead(BaseModel):
    datetime: datetime
    type: str
    status: str
    author: str  # the person's or key's name (as every note had)
    author_kind: Literal["person", "key", "system"] | None = None  # None: written before people signed in
    author_email: str | None = None
    author_via: Literal["key", "bearer", "session"] | None = None
    by: str  # how staff read it: "Ann Lee", "key ops", "the 311 system"
    summary: str  # "Closed by Ann Lee"
    description: str | None
    public: bool


class StaffRequestRead(BaseModel):
    """The whole request, personal data included: staff scope only."""

    service_request_id: str
    token: str | None
    status: str
    detailed_status: str
    closure_reason: str | None
    first_contact_resolution: bool
    service_code: str
    service_name: str
    department_code: str
    agency_responsible: str
    channel: str
    description: str | None
    status_notes: str | None
    service_notice: str | None
    lat: float | None
    long: float | None
    address: str | None
    address_id: str | None
    zipcode: str | None
    media_url: str | None
    attributes: dict[str, Any]
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    device_id: str | None
    account_id: str | None
    duplicate_of: str | None
    requested_datetime: datetime
    updated_datetime: datetime
    expected_datetime: datetime | None
    closed_datetime: datetime | None
    overdue: bool
    created_by: str
    created_by_kind: Literal["person", "key"] | None = None
    created_by_email: str | None = None
    filed_by: str  # "Ann Lee" (a call-taker) or "key call_center"
    notes: list[NoteRead] = Field(default_factory=list)
    feedback: FeedbackRead | None = None


# --- history import (intake311.history_import) --------------------------------------------------


class ImportBatchRead(BaseModel):
    """One import of a city's request history: the file, who, when, counts and the period covered."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    file_name: str
    file_sha256: str
    imported_by: ActorRead
    started_at: datetime
    finished_at: datetime | None  # None: interrupted (running the same file and mapping again resumes it)
    rows_total: int
    rows_imported: int
    rows_present: int
    rows_refused: int
    first_requested: datetime | None
    last_requested: datetime | None


class ImportReportRead(BaseModel):
    batch_id: str | None
    file_name: str
    dry_run: bool
    already_finished: bool
    rows_total: int
    rows_imported: int  # by this run (a dry run: would be)
    rows_resumed: int  # by an earlier, interrupted run of the same batch
    rows_present: int  # legacy numbers already stored: skipped
    rows_refused: int
    refused: list[dict[str, Any]]  # {row, legacy_id, reasons}; the first 1000
    unknown: dict[str, dict[str, int]]  # kind -> value -> rows (services, departments, statuses, ...)
    first_requested: datetime | None
    last_requested: datetime | None
    report: list[str]  # as the CLI prints it; the last line is the count


class ImportedRequest(BaseModel):
    """An imported request as the indicators need it: the fields of the 311.requests events
    (citystat_common.events.ServiceRequestData) and its legacy number."""

    service_request_id: str
    legacy_id: str | None
    service_code: str
    service_name: str
    department_code: str
    channel: str
    status: str
    detailed_status: str
    requested_datetime: datetime
    expected_datetime: datetime | None
    updated_datetime: datetime
    closed_datetime: datetime | None
    closure_reason: str | None
    first_contact_resolution: bool
    duplicate_of: str | None
    lat: float | None
    long: float | None


class ImportedPage(BaseModel):
    items: list[ImportedRequest]
    next_after: int | None  # pass as ?after= for the next page; None: this was the last
