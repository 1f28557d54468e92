"""Indicators API shapes: ``XCreate`` / ``XUpdate`` / ``XRead``."""

from __future__ import annotations

import math
import re
from datetime import date, datetime
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

from citystat_common.bounds import check_year, within_horizon
from citystat_common.codes import city_code
from indicators.evaluation import validate_rules

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,119}$")

Unit = Literal["count", "percentage", "currency", "duration", "score"]
Kind = Literal["input", "output", "outcome", "efficiency", "quality"]
Direction = Literal["up", "down", "band"]
Frequency = Literal["daily", "weekly", "monthly", "quarterly", "annual"]
FunctionTag = Literal["technology", "staffing", "spending", "customer_service", "performance"]
Basis = Literal["target", "prior_period", "same_period_last_year", "history"]
Status = Literal["green", "yellow", "red", "grey"]
# what a reader sees (indicators.states): grey splits into no_report (owed) and baseline (not judgeable yet)
State = Literal["red", "yellow", "green", "baseline", "no_report"]
OVERRIDE_MAX_DAYS = 366
Applies = Literal["period", "rest_of_year", "fiscal_year", "onward"]


def _code(v: str) -> str:
    v = v.strip()
    if not CODE_RE.match(v):
        raise ValueError("must be 1-120 characters: letters, digits, _ . -, starting with a letter or digit")
    return v


def _dept(v: str) -> str:
    # the city's own code, case kept and looked up exactly ("NYC H+H", "dohmh"): citystat_common.codes
    return city_code(v, what="department code", slash=False)


Code = Annotated[str, AfterValidator(_code)]
DeptCode = Annotated[str, AfterValidator(_dept)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]


class Strict(BaseModel):
    # Every number an input carries is finite: Infinity/NaN are neither settings nor measurements.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RuleIn(Strict):
    status: Literal["green", "yellow", "red"]
    max_miss: float | None = Field(None, ge=0, description="relative miss, 0.05 = 5% worse; omit on the last rule")


class FormulaIn(Strict):
    op: Literal["ratio"] = "ratio"
    numerator: Code = Field(description="e.g. the spending indicator")
    denominator: Code = Field(description="e.g. the output indicator")


class EvaluationFields(Strict):
    basis: Basis | None = None
    rules: list[RuleIn] | None = Field(None, description="ordered; the first that matches wins; default: city-wide")
    persistence: int | None = Field(None, ge=1, le=52, description="red only after N consecutive breaching periods")
    recovery_within: float | None = Field(None, ge=0, description="leave red only when the miss is within this")
    band_tolerance: float | None = Field(None, ge=0, le=10)
    history_window: int | None = Field(None, ge=2, le=520)
    history_k: float | None = Field(None, gt=0, le=10)
    grace_days: int | None = Field(None, ge=0, le=366)

    @field_validator("rules")
    @classmethod
    def _rules(cls, v: list[RuleIn] | None) -> list[RuleIn] | None:
        if v is not None:
            validate_rules([r.model_dump() for r in v])
        return v


class IndicatorCreate(EvaluationFields):
    code: Code
    name: Name
    department_code: DeptCode
    description: Text = ""
    unit: Unit
    kind: Kind
    direction: Direction
    frequency: Frequency
    additive: bool | None = Field(None, description="sum over periods; default by unit: count and currency yes, "
                                  "percentage, score, duration and formulas no (percentages and scores never)")
    critical: bool = False
    function_tag: FunctionTag = "performance"
    owner: Annotated[str, StringConstraints(max_length=200)] | None = None
    data_source: Annotated[str, StringConstraints(max_length=200)] | None = None
    formula: FormulaIn | None = None
    linked_outcome_code: Code | None = Field(None, description="for spending: the outcome it buys")


class IndicatorUpdate(EvaluationFields):
    name: Name | None = None
    description: Text | None = None
    kind: Kind | None = None
    direction: Direction | None = None
    additive: bool | None = None
    critical: bool | None = None
    function_tag: FunctionTag | None = None
    owner: Annotated[str, StringConstraints(max_length=200)] | None = None
    data_source: Annotated[str, StringConstraints(max_length=200)] | None = None
    linked_outcome_code: Code | None = None
    active: bool | None = None


class OverrideRead(BaseModel):
    id: int
    status: Status
    reason: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    cleared_at: datetime | None = None
    cleared_by: str | None = None
    created_by_email: str | None = None
    cleared_by_email: str | None = None


class IndicatorRead(BaseModel):
    id: str
    code: str
    name: str
    department_code: str
    description: str
    unit: str
    kind: str
    direction: str
    frequency: str
    additive: bool
    critical: bool
    function_tag: str
    owner: str | None
    data_source: str | None
    basis: str
    rules: list[dict[str, Any]]
    persistence: int
    recovery_within: float
    band_tolerance: float
    history_window: int
    history_k: float
    grace_days: int
    formula: dict[str, Any] | None
    linked_outcome_code: str | None
    derived_from: str | None
    active: bool
    status: Status
    state: State = Field(description="red, yellow, green (judged); no_report: a period passed without its "
                         "figure; baseline: a figure that cannot be judged yet (no target or too little history)")
    status_reason: str | None
    computed_status: str | None
    missing: bool
    overridden: bool
    override: OverrideRead | None
    latest_period: str | None
    latest_value: float | None
    latest_target: float | None
    episode_id: str | None
    next_due_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DescriptionRead(BaseModel):
    text: str
    valid_from: datetime
    valid_to: datetime | None
    changed_by: str


class TargetIn(Strict):
    period: str | None = Field(None, description="a period label or a date inside it")
    fiscal_year: Annotated[int, AfterValidator(check_year)] | None = Field(
        None, description="from the first period of that fiscal year (within a few fiscal years of now)")
    value: float
    applies: Applies | None = Field(None, description="period (default for a period): that period only; "
                                    "rest_of_year: to the end of its fiscal year; fiscal_year (default for a "
                                    "fiscal_year): that whole fiscal year; onward: until a later onward target")

    @model_validator(mode="after")
    def _one(self) -> TargetIn:
        if (self.period is None) == (self.fiscal_year is None):
            raise ValueError("give exactly one of period or fiscal_year")
        if not math.isfinite(self.value):
            raise ValueError("value must be a finite number")
        return self


class TargetsIn(Strict):
    targets: list[TargetIn] = Field(min_length=1, max_length=10_000)


class TargetRead(BaseModel):
    period: str  # FY2027 for a fiscal-year target, else the period it was set for
    period_start: date
    fiscal_year: int
    value: float
    applies: Applies
    set_by: str
    set_at: datetime


class TargetPeriodRead(BaseModel):
    """Which target governs one period, and why (the precedence is in indicators.targets)."""

    period: str
    period_start: date
    target: float | None
    applies: Applies | None
    set_for: str | None = Field(description="the period or fiscal year the governing target was set for")
    why: str


class ObservationIn(Strict):
    period: str = Field(description="a period label (2026-10, 2026-W41, FY2027-Q1, FY2027) or a date inside it")
    value: float
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None


class ObservationRead(BaseModel):
    period: str
    period_start: date
    period_end: date
    value: float
    target: float | None
    reference: float | None
    status: str
    state: State
    raw_status: str
    miss: float | None
    streak: int
    reason: str | None
    revision: int
    note: str | None
    source: str
    updated_by: str
    updated_at: datetime


class BulkResult(BaseModel):
    ok: bool = True
    received: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    indicators: int = 0
    errors: list[dict[str, Any]] = Field(default_factory=list)


class RevisionRead(BaseModel):
    old_value: float
    new_value: float
    changed_by: str
    changed_at: datetime
    source: str


class OverrideIn(Strict):
    status: Status
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=5, max_length=2000)]
    # Judgement is revisited: an override ends in the future, and within about a year.
    expires_at: Annotated[datetime, AfterValidator(within_horizon(days=OVERRIDE_MAX_DAYS))]

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("expires_at must carry a timezone, e.g. 2026-12-01T00:00:00Z")
        return v


class StatusChangeRead(BaseModel):
    at: datetime
    event: str
    period: str | None
    previous_status: str | None
    status: str
    value: float | None
    target: float | None
    magnitude: float | None
    basis: str
    overridden: bool
    override_reason: str | None
    reason: str | None
    episode_id: str | None
    actor: str | None = Field(description="who: a person's name, or \"key <name>\" for a machine key")
    actor_email: str | None = None
    actor_via: str | None = Field(None, description="key, bearer or session")


class SummaryRead(BaseModel):
    code: str
    period: str
    value: float | None
    target: float | None
    status: str | None
    ytd_periods: int
    ytd_value: float | None
    ytd_target: float | None
    ytd_method: Literal["sum", "mean", "formula"]
    fiscal_year: int
    last_year_period: str
    last_year_value: float | None
    change_from_last_year: float | None


class DepartmentRead(BaseModel):
    code: str
    name: str
    cluster_code: str | None
    cluster_name: str | None
    active: bool
