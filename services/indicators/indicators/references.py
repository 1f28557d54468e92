"""Fields that name another indicator: each must name a known, active one (422 on the field),
and a formula must not use itself, directly or through other formulas."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from citystat_common.errors import Invalid
from citystat_common.uow import UnitOfWork
from indicators.aggregation import formula_cycle
from indicators.models import FormulaInput, Indicator


async def referenced(uow: UnitOfWork, code: str, *, field: str, what: str, own_code: str) -> Indicator:
    """The active indicator ``code`` names, else 422 on ``field``."""
    if code == own_code:
        raise Invalid(f"{what} cannot be the indicator itself", field=field)
    other = (await uow.session.execute(sa.select(Indicator).where(Indicator.code == code))).scalar_one_or_none()
    if other is None:
        raise Invalid(f"{what} {code!r} is not an indicator", field=field)
    if not other.active:
        raise Invalid(f"{what} {code!r} is inactive (retired)", field=field)
    return other


async def check_linked_outcome(uow: UnitOfWork, code: str | None, *, own_code: str) -> None:
    if code is not None:
        await referenced(uow, code, field="linked_outcome_code", what="linked outcome", own_code=own_code)


async def formula_inputs(uow: UnitOfWork, *, own_code: str, frequency: str, roles: dict[str, str]) -> dict[str, Indicator]:
    """The formula's inputs by role (numerator, denominator), each checked; no cycle through them."""
    inputs: dict[str, Indicator] = {}
    for role, code in roles.items():
        field = f"formula.{role}"
        if code == own_code:
            raise Invalid(f"a formula cannot use itself ({role} {code!r})", field=field)
        other = await referenced(uow, code, field=field, what=f"formula {role}", own_code=own_code)
        if other.frequency != frequency:
            raise Invalid(f"formula {role} {code!r} is {other.frequency}, not {frequency}", field=field)
        inputs[role] = other
    uses = await _formula_graph(uow)
    for role, other in inputs.items():
        path = formula_cycle(own_code, [other.code], lambda c: uses.get(c))
        if path is not None:
            raise Invalid(f"a formula cannot use itself: {' -> '.join(path)}", field=f"formula.{role}")
    return inputs


async def _formula_graph(uow: UnitOfWork) -> dict[str, list[str]]:
    """formula code -> the codes of its inputs (formulas are few: read them all)."""
    f, i = aliased(Indicator), aliased(Indicator)
    res = await uow.session.execute(
        sa.select(f.code, i.code).select_from(FormulaInput)
        .join(f, f.id == FormulaInput.formula_indicator_id).join(i, i.id == FormulaInput.input_indicator_id)
    )
    out: dict[str, list[str]] = {}
    for fc, ic in res:
        out.setdefault(fc, []).append(ic)
    return out
