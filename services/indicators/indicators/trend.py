"""The trend a reader sees beside a figure, as the Mayor's Management Report reads it. Pure, no I/O.

The figure's first and latest periods on record are compared: a change within 10% of the first
is "neutral" (steady); beyond it the trend is "up" or "down", and it is desirable when it goes the
indicator's desired direction. A figure kept within a range (direction "band") has no better
direction, so its trend is shown but not judged."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

NEUTRAL_BAND = 0.10  # the MMR's: a change within 10% is neutral
TrendWord = Literal["up", "down", "neutral"]
DESIRED = {"up": "higher is better", "down": "lower is better", "band": "kept within a range"}


@dataclass(frozen=True)
class Trend:
    direction: TrendWord
    desirable: bool | None  # None: neutral, or nothing is better (a range)
    periods: int

    @property
    def words(self) -> str:
        judged = "" if self.desirable is None else (" (desirable)" if self.desirable else " (not desirable)")
        return f"{self.direction}{judged} over {self.periods} periods"


def trend_of(values: Sequence[float], desired: str) -> Trend | None:
    """The trend over ``values`` (oldest first) read against ``desired`` (up, down, band);
    None when there are fewer than two finite figures."""
    xs = [v for v in values if v is not None and math.isfinite(v)]
    if len(xs) < 2:
        return None
    first, last = xs[0], xs[-1]
    if first == 0:
        change = 0.0 if last == 0 else math.copysign(math.inf, last)
    else:
        change = (last - first) / abs(first)
    word: TrendWord = "neutral" if abs(change) <= NEUTRAL_BAND else ("up" if change > 0 else "down")
    desirable = None if word == "neutral" or desired not in ("up", "down") else word == desired
    return Trend(direction=word, desirable=desirable, periods=len(xs))


def desired_words(direction: str) -> str:
    return DESIRED.get(direction, direction)
