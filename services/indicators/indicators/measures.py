"""One measure, many departments (issue 22, the comparison view): which indicators are "the same
measure" reported by different departments.

The rule (``measure_of``, pure): an indicator's code with its department taken out.

- 311 figures (``derived311.indicator_code``): ``311.<DEPT>.<metric>`` is the measure ``311.<metric>``,
  and ``311.<DEPT>.<service>.<metric>`` is ``311.<service>.<metric>``.
- Figures the departments report: ``<DEPT>.<rest>`` (the code starts with the department's own code
  and a dot) is the measure ``<rest>``, so ``STREETS.vacancy`` and ``CONTACT311.vacancy`` are one
  measure, ``vacancy``. A code that does not start with its department's code is a measure of its own.

``reporters`` reads, in one query, the indicators that may carry a measure (their codes end with it)
and keeps those the rule says carry it.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

import sqlalchemy as sa

from citystat_common.uow import UnitOfWork
from indicators.models import Indicator


def measure_of(code: str, department_code: str, derived_from: str | None) -> str:
    """The measure an indicator reports: its code without its department."""
    if derived_from == "311":
        parts = code.split(".")
        if len(parts) >= 3 and parts[0] == "311":
            return ".".join(["311", *parts[2:]])
        return code
    prefix = f"{department_code}."
    if code.startswith(prefix) and len(code) > len(prefix):
        return code[len(prefix):]
    return code


def _tail(measure: str) -> str:
    """What every code carrying ``measure`` ends with (a department's code stands before it)."""
    return "." + (measure[4:] if measure.startswith("311.") else measure)


async def reporters(uow: UnitOfWork, measure: str) -> list[tuple[str, str]]:
    """(code, department) of the active indicators that report ``measure`` (one query)."""
    rows: Sequence[tuple[str, str, str | None]] = (await uow.session.execute(
        sa.select(Indicator.code, Indicator.department_code, Indicator.derived_from)
        .where(Indicator.active.is_(True),
               sa.or_(Indicator.code == measure, Indicator.code.endswith(_tail(measure), autoescape=True)))
    )).tuples().all()
    return sorted((code, dept) for code, dept, source in rows if measure_of(code, dept, source) == measure)


def compare_href(measure: str) -> str:
    """The comparison page of ``measure`` (its URL is the bookmark)."""
    return "/dashboard/compare?" + urlencode({"measure": measure})


async def compare_link_for(uow: UnitOfWork, ind: Indicator) -> str | None:
    """The comparison page of the indicator's measure when more than one department reports it."""
    measure = measure_of(ind.code, ind.department_code, ind.derived_from)
    found = await reporters(uow, measure)
    return compare_href(measure) if len({dept for _, dept in found}) > 1 else None


async def shared_measures(uow: UnitOfWork) -> list[tuple[str, str, int]]:
    """(measure, its name, departments) for every measure more than one department reports, by name
    (one query over the active indicators' codes and names). The name is the one most departments use."""
    rows = (await uow.session.execute(
        sa.select(Indicator.code, Indicator.department_code, Indicator.derived_from, Indicator.name)
        .where(Indicator.active.is_(True))
    )).tuples().all()
    depts: dict[str, set[str]] = {}
    names: dict[str, dict[str, int]] = {}
    for code, dept, source, name in rows:
        m = measure_of(code, dept, source)
        depts.setdefault(m, set()).add(dept)
        counted = names.setdefault(m, {})
        counted[name] = counted.get(name, 0) + 1
    out = [(m, max(sorted(names[m]), key=lambda n: names[m][n]), len(d)) for m, d in depts.items() if len(d) > 1]
    return sorted(out, key=lambda x: (x[1].lower(), x[0]))
