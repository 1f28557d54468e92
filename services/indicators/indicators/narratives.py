"""The department's own words in its report: what it does (the statement: services, goals and the
indicators answering them) and its narrative of each report period. Who may write them, and the
writes and reads; every earlier version is kept with the name of the person who wrote it.

A department's staff write for their own department (their department groups at the identity
provider, or a key limited to departments); an administrator for any. The service functions never
commit: the router does."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from citystat_common.auth import Principal
from citystat_common.db import utcnow
from citystat_common.errors import Invalid, NotFound
from citystat_common.uow import UnitOfWork
from indicators.models import Department, DepartmentNarrative, DepartmentStatement, Indicator
from indicators.people import BY_MAX
from indicators.schemas_report import StatementUpdate

YEARS_BACK = 6  # a narrative may be written late, for a month up to this many years back


def may_write_for(principal: Principal | None, department_code: str) -> str | None:
    """None when ``principal`` may write ``department_code``'s statement and narratives, else why not."""
    if principal is None:
        return "sign in to write a department's report"
    if principal.has("admin"):
        return None
    # sign-in groups arrive upper-cased: a person's departments are the city's codes without case
    if not principal.has("staff") or department_code.casefold() not in {d.casefold() for d in principal.departments}:
        return (f"only the staff of {department_code} or an administrator may write its report"
                + (f"; you are staff of {', '.join(sorted(principal.departments))}" if principal.departments else ""))
    return None


def check_month(period: str, today: date) -> str:
    """The report period as written (2026-11), if it has begun and is not too old; else 422."""
    year, month = int(period[:4]), int(period[5:7])
    if (year, month) > (today.year, today.month):
        raise Invalid(f"{period} has not begun: a narrative is written for a month that has", field="period")
    if year < today.year - YEARS_BACK:
        raise Invalid(f"{period} is more than {YEARS_BACK} years back", field="period")
    return period


async def resolve_code(uow: UnitOfWork, code: str) -> str:
    """The department's code as the city has it: the code as written, else its upper case (these
    routes took upper-cased codes before a city's own codes; ``streets`` still finds STREETS), so
    ``dohmh`` finds dohmh. 404 when neither is a department or has indicators."""
    for candidate in dict.fromkeys((code, code.upper())):
        try:
            await department_name(uow, candidate)
        except NotFound:
            continue
        return candidate
    raise NotFound(f"no department {code!r} with indicators", field="code")


async def department_name(uow: UnitOfWork, code: str) -> str:
    """The department's name; 404 for a code that is neither a department nor has indicators."""
    dept = await uow.session.get(Department, code)
    if dept is not None:
        return dept.name
    known = (await uow.session.execute(
        sa.select(Indicator.id).where(Indicator.department_code == code).limit(1))).scalar_one_or_none()
    if known is None:
        raise NotFound(f"no department {code!r} with indicators", field="code")
    return code


async def write_narrative(uow: UnitOfWork, *, code: str, period: str, text: str, principal: Principal,
                          now: datetime | None = None) -> DepartmentNarrative:
    """A new narrative for the period; the one it replaces is kept, marked superseded."""
    now = now or utcnow()
    actor = principal.actor()
    await uow.session.execute(
        sa.update(DepartmentNarrative)
        .where(DepartmentNarrative.department_code == code, DepartmentNarrative.period == period,
               DepartmentNarrative.superseded_at.is_(None))
        .values(superseded_at=now))
    row = DepartmentNarrative(department_code=code, period=period, text=text, written_by=actor.label[:BY_MAX],
                              written_by_email=actor.email, written_at=now)
    uow.session.add(row)
    await uow.session.flush()
    return row


async def current_narrative(uow: UnitOfWork, code: str, period: str) -> DepartmentNarrative | None:
    return (await uow.session.execute(
        sa.select(DepartmentNarrative).where(DepartmentNarrative.department_code == code,
                                             DepartmentNarrative.period == period,
                                             DepartmentNarrative.superseded_at.is_(None))
        .order_by(DepartmentNarrative.id.desc()).limit(1))).scalar_one_or_none()


def narratives_query(code: str, period: str | None = None) -> sa.Select[Any]:
    """Every version, newest first (for pagination)."""
    stmt = sa.select(DepartmentNarrative).where(DepartmentNarrative.department_code == code)
    if period:
        stmt = stmt.where(DepartmentNarrative.period == period)
    return stmt.order_by(DepartmentNarrative.period.desc(), DepartmentNarrative.id.desc())


async def check_goal_indicators(uow: UnitOfWork, code: str, data: StatementUpdate) -> None:
    """Each goal names indicators of this department, each at most once in the statement."""
    named = [c for s in data.services for g in s.goals for c in g.indicators]
    twice = sorted(c for c, n in Counter(named).items() if n > 1)
    if twice:
        raise Invalid(f"an indicator answers one goal only: {', '.join(twice)} named twice", field="services")
    if not named:
        return
    own = set((await uow.session.execute(
        sa.select(Indicator.code).where(Indicator.code.in_(named), Indicator.department_code == code))).scalars())
    missing = [c for c in named if c not in own]
    if missing:
        raise Invalid(f"not indicators of {code}: {', '.join(missing[:10])}", field="services")


async def write_statement(uow: UnitOfWork, *, code: str, data: StatementUpdate, principal: Principal,
                          now: datetime | None = None) -> DepartmentStatement:
    await check_goal_indicators(uow, code, data)
    now = now or utcnow()
    actor = principal.actor()
    await uow.session.execute(
        sa.update(DepartmentStatement)
        .where(DepartmentStatement.department_code == code, DepartmentStatement.valid_to.is_(None))
        .values(valid_to=now))
    row = DepartmentStatement(department_code=code, what_we_do=data.what_we_do,
                              services=[s.model_dump() for s in data.services], written_by=actor.label[:BY_MAX],
                              written_by_email=actor.email, written_at=now)
    uow.session.add(row)
    await uow.session.flush()
    return row


async def current_statements(uow: UnitOfWork, codes: Sequence[str] | None = None) -> dict[str, DepartmentStatement]:
    """Department code -> its statement in force (every department's when ``codes`` is None)."""
    stmt = sa.select(DepartmentStatement).where(DepartmentStatement.valid_to.is_(None))
    if codes is not None:
        stmt = stmt.where(DepartmentStatement.department_code.in_(list(codes)))
    rows = (await uow.session.execute(stmt.order_by(DepartmentStatement.id))).scalars()
    return {r.department_code: r for r in rows}


def statements_query(code: str) -> sa.Select[Any]:
    return (sa.select(DepartmentStatement).where(DepartmentStatement.department_code == code)
            .order_by(DepartmentStatement.id.desc()))
