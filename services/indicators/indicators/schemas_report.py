"""API shapes of the department report: the department's statement (what it does, its services and
goals) and its narrative per report period. ``XCreate`` / ``XUpdate`` / ``XRead``."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from indicators.schemas import Code, Strict

MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
NARRATIVE_MAX = 20_000


def _month(v: str) -> str:
    v = v.strip()
    if not MONTH_RE.match(v):
        raise ValueError("must be a month such as 2026-11")
    return v


Month = Annotated[str, AfterValidator(_month)]
Words = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NARRATIVE_MAX)]
Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


class NarrativeUpdate(Strict):
    text: Words = Field(description="what the figures of the period do not say by themselves, in the department's words")


class NarrativeCreate(NarrativeUpdate):
    period: Month = Field(description="the report period, a month (2026-11)")


class NarrativeRead(BaseModel):
    department_code: str
    period: str
    text: str
    written_by: str
    written_by_email: str | None
    written_at: datetime
    superseded_at: datetime | None
    current: bool


class GoalIn(Strict):
    goal: Line
    indicators: list[Code] = Field(default_factory=list, max_length=200,
                                   description="codes of the department's indicators that answer this goal")


class ServiceIn(Strict):
    service: Line
    goals: list[GoalIn] = Field(default_factory=list, max_length=30)


class StatementUpdate(Strict):
    what_we_do: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]
    services: list[ServiceIn] = Field(default_factory=list, max_length=30)


class StatementRead(BaseModel):
    department_code: str
    what_we_do: str
    services: list[ServiceIn]
    written_by: str
    written_by_email: str | None
    written_at: datetime
    valid_to: datetime | None
