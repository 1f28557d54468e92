"""What is wrong comes first (issue 22). Pure rules, no I/O.

Red before yellow before no report before building a baseline before green; within red and
yellow a critical indicator comes first, then the larger miss (the relative distance from the
target, ``latest_miss``). 311 figures per service (``311.<DEPT>.<service>.<measure>``) are kept
out of the first screen: they sit, collapsed, under their department's own 311 figures."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Protocol

from indicators.states import STATE_WORDS, STATES

RANK = {"red": 0, "yellow": 1, "no_report": 2, "baseline": 3, "green": 4}
ORDER = tuple(sorted(STATES, key=lambda s: RANK[s]))


class Ranked(Protocol):
    @property
    def state(self) -> str: ...
    @property
    def critical(self) -> bool: ...
    @property
    def miss(self) -> float | None: ...
    @property
    def code(self) -> str: ...


def severity(t: Ranked) -> tuple[int, int, float, str]:
    """Sort key: worst first; ties by code so the order is stable between refreshes."""
    miss = t.miss if t.miss is not None else 0.0
    judged = t.state in ("red", "yellow")
    return (RANK.get(t.state, len(RANK)), 0 if t.critical and judged else 1, -miss if judged else 0.0, t.code)


def per_service_311(code: str, derived_from: str | None) -> bool:
    """A 311 figure for one service of a department (the department-wide ones have three parts)."""
    return derived_from == "311" and code.count(".") >= 3


def counts(states: Iterable[str]) -> Counter[str]:
    return Counter(states)


def summary_line(states: Iterable[str]) -> str:
    """'3 red, 1 yellow, 2 green' in the order of what is wrong first; states with none are left out."""
    c = counts(states)
    parts = [f"{c[s]} {STATE_WORDS[s]}" for s in ORDER if c[s]]
    return ", ".join(parts) if parts else "no figures"
