"""What may be added up. Pure rules, no I/O.

A city publishes year-to-date figures: counts, money and hours of work add up; a percentage, a
rate, an average, a median or a days-to-close figure does not (summing monthly percentages gave
326.5%). The unit decides the default, and a percentage or a score (an average) is never summed.
A formula (a ratio such as cost per ton) is never summed either: its year to date is the formula
applied to its inputs' year-to-date values (``indicators.summary``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from citystat_common.errors import Invalid

# duration: days to close by default, but hours of work may be declared additive.
ADDITIVE_BY_DEFAULT = {"count": True, "currency": True, "duration": False, "percentage": False, "score": False}
NEVER_ADDITIVE = {"percentage": "a percentage", "score": "a score (an average)"}


def default_additive(unit: str, *, formula: bool = False) -> bool:
    return False if formula else ADDITIVE_BY_DEFAULT.get(unit, False)


def check_additive(unit: str, additive: bool, *, formula: bool = False) -> None:
    """422 on ``additive`` when it asks to sum what must not be summed."""
    if not additive:
        return
    if formula:
        raise Invalid("a formula (a ratio) is never summed: its year to date is the formula of its inputs' "
                      "year-to-date values", field="additive")
    if unit in NEVER_ADDITIVE:
        raise Invalid(f"{NEVER_ADDITIVE[unit]} is never summed; leave additive unset or false", field="additive")


def formula_cycle(code: str, inputs: Iterable[str], uses_of: Callable[[str], Iterable[str] | None]) -> list[str] | None:
    """The path by which a formula ``code`` over ``inputs`` would use itself, or None.
    ``uses_of(c)``: the inputs of formula ``c`` (None or empty for a plain indicator)."""
    stack: list[tuple[str, list[str]]] = [(i, [code, i]) for i in inputs]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        if node == code:
            return path
        if node in seen:
            continue
        seen.add(node)
        for nxt in uses_of(node) or ():
            stack.append((nxt, [*path, nxt]))
    return None
