"""What a resident or an official reads instead of the registry's field names (issue 22: no
developer text on a page): how an indicator is judged, and what each status change was. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from indicators.models import Indicator
from indicators.trend import desired_words

UNIT_WORDS = {"count": "a count", "percentage": "a percentage", "currency": "an amount of money",
              "duration": "a time", "score": "a score"}
BASIS_WORDS = {"target": "its target", "prior_period": "the period before",
               "same_period_last_year": "the same period last year", "history": "its own recent history"}
EVENT_WORDS = {"status_changed": "status changed", "breached": "missed (red)", "recovered": "recovered",
               "noted": "recorded"}


def judged_words(ind: Indicator, rules: Sequence[dict[str, Any]], department: str | None = None) -> str:
    """'Reported monthly by the Streets Department; a percentage, higher is better; judged against its
    target: green within 5% of it, yellow within 10%, red beyond. A critical indicator.'"""
    bands = ", ".join(
        f"{r['status']} within {r['max_miss'] * 100:g}%" + (" of it" if k == 0 else "")
        if r.get("max_miss") is not None else f"{r['status']} beyond" for k, r in enumerate(rules))
    source = "Counted from 311 requests" if ind.derived_from == "311" else "Reported"
    return (f"{source} {ind.frequency} by {department or ind.department_code}; "
            f"{UNIT_WORDS.get(ind.unit, ind.unit)}, {desired_words(ind.direction)}; "
            f"judged against {BASIS_WORDS.get(ind.basis, ind.basis)}: {bands}."
            + (" A critical indicator." if ind.critical else ""))


def event_words(event: str) -> str:
    """'status_changed,breached' -> 'status changed; missed (red)'."""
    return "; ".join(EVENT_WORDS.get(e, e.replace("_", " ")) for e in event.split(",") if e)
