"""Status evaluation: pure functions, no I/O, unit-tested with tables and hypothesis.

1. A **reference** comes from the indicator's comparison basis:
   - ``target``: the period's target (targets carry forward until the next one);
   - ``prior_period``: the previous period's value;
   - ``same_period_last_year``: the value of the same period a year before;
   - ``history``: the rolling mean of the last ``history_window`` observations before the
     period, with a band of ± ``history_k`` standard deviations; the side of the band that
     matters is set by the direction (up: the lower edge, down: the upper edge, band: both).
2. The **miss** is direction-aware and relative: how far the value is on the wrong side of
   the reference, divided by |reference centre| (or absolute when the centre is 0).
   ``up``: (low - value) / scale; ``down``: (value - high) / scale; ``band``: the distance
   outside [low, high] / scale. A miss <= 0 means on target or better.
   For target/prior/last-year bases low = high = the reference, except for ``band``
   indicators, whose band is the reference ± ``band_tolerance`` × |reference|.
3. **Ordered rules**, the first that matches wins: ``[{"max_miss": .05, "status": "green"},
   {"max_miss": .10, "status": "yellow"}, {"max_miss": null, "status": "red"}]``.
4. **Persistence**: a raw red counts as red only after ``persistence`` consecutive raw-red
   periods; before that it shows yellow. **Hysteresis**: once red, the indicator stays red
   until the miss is back within ``recovery_within`` (across periods, and within a period
   whose value is revised while it runs).
5. No value, a value that is not a finite number, or no reference → **grey** (cannot judge).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("green", "yellow", "red", "grey")
SEVERITY = {"green": 0, "yellow": 1, "red": 2}
BASES = ("target", "prior_period", "same_period_last_year", "history")
DIRECTIONS = ("up", "down", "band")


@dataclass(frozen=True)
class Rule:
    status: str
    max_miss: float | None = None  # None: matches any miss (the catch-all)


def default_rules(green_within: float = 0.05, yellow_within: float = 0.10) -> tuple[Rule, ...]:
    return (Rule("green", green_within), Rule("yellow", yellow_within), Rule("red", None))


def validate_rules(rules: Sequence[dict[str, Any]] | Sequence[Rule]) -> tuple[Rule, ...]:
    """Rules must be ordered by growing miss and growing severity, the last a catch-all:
    that is what makes the status monotonic in the size of the miss."""
    out = [r if isinstance(r, Rule) else Rule(str(r.get("status")), r.get("max_miss")) for r in rules]
    if not out:
        raise ValueError("at least one rule is needed")
    last_bound = -math.inf
    last_sev = -1
    for i, r in enumerate(out):
        if r.status not in SEVERITY:
            raise ValueError(f"rule {i + 1}: status must be green, yellow or red")
        if SEVERITY[r.status] < last_sev:
            raise ValueError(f"rule {i + 1}: statuses must not get milder as the miss grows")
        last_sev = SEVERITY[r.status]
        if r.max_miss is None:
            if i != len(out) - 1:
                raise ValueError(f"rule {i + 1}: only the last rule may omit max_miss")
            continue
        if not math.isfinite(r.max_miss) or r.max_miss < 0 or r.max_miss <= last_bound:
            raise ValueError(f"rule {i + 1}: max_miss must be finite, >= 0 and larger than the previous one")
        last_bound = r.max_miss
    if out[-1].max_miss is not None:
        raise ValueError("the last rule must omit max_miss (it catches every larger miss)")
    return tuple(out)


@dataclass(frozen=True)
class EvalConfig:
    direction: str = "up"
    basis: str = "target"
    rules: tuple[Rule, ...] = field(default_factory=default_rules)
    persistence: int = 1
    recovery_within: float = 0.05
    band_tolerance: float = 0.05
    history_k: float = 2.0
    history_window: int = 8
    history_min_points: int = 3


@dataclass(frozen=True)
class Reference:
    basis: str
    centre: float
    low: float
    high: float


@dataclass(frozen=True)
class PrevState:
    status: str
    streak: int  # consecutive raw-red periods up to and including that period


@dataclass(frozen=True)
class Evaluation:
    status: str
    raw_status: str
    miss: float | None
    streak: int
    reference: Reference | None
    reason: str


def _as_float(x: Any) -> float | None:
    """A finite float, or None (booleans, NaN, infinities and ints too big for a float)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    try:
        f = float(x)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def reference_for(
    cfg: EvalConfig,
    *,
    target: float | None = None,
    prior: float | None = None,
    last_year: float | None = None,
    history: Sequence[float] = (),
) -> Reference | None:
    """The reference of the indicator's basis, or None when there is none to compare with."""
    if cfg.basis == "history":
        points = [f for f in (_as_float(h) for h in history) if f is not None][-cfg.history_window:]
        if len(points) < max(2, cfg.history_min_points):
            return None
        try:
            mean = math.fsum(points) / len(points)
            sd = math.sqrt(math.fsum((p - mean) * (p - mean) for p in points) / len(points))
        except (OverflowError, ValueError):  # fsum refuses sums beyond the float range
            return None
        if not (math.isfinite(mean) and math.isfinite(sd)):
            return None
        spread = cfg.history_k * sd
        return Reference("history", mean, mean - spread, mean + spread)
    centre = {"target": target, "prior_period": prior, "same_period_last_year": last_year}.get(cfg.basis)
    centre = _as_float(centre)
    if centre is None:
        return None
    if cfg.direction == "band":
        tol = abs(centre) * cfg.band_tolerance
        return Reference(cfg.basis, centre, centre - tol, centre + tol)
    return Reference(cfg.basis, centre, centre, centre)


def miss_of(value: float, ref: Reference, direction: str) -> float | None:
    """Relative size of the miss; <= 0 is on target or better; None if it cannot be computed."""
    value = _as_float(value)  # type: ignore[assignment]
    if value is None:
        return None
    m = _raw_miss(value, ref, direction)
    return None if math.isnan(m) else m


def _raw_miss(value: float, ref: Reference, direction: str) -> float:
    """miss_of for a float value; NaN when it cannot be computed (evaluate_run's hot loop calls it)."""
    centre = ref.centre
    scale = abs(centre) if abs(centre) > 1e-12 else 1.0
    try:
        if direction == "up":
            return (ref.low - value) / scale
        if direction == "down":
            return (value - ref.high) / scale
        if direction == "band":
            return max(ref.low - value, value - ref.high) / scale
    except (OverflowError, ZeroDivisionError):
        return math.nan
    raise ValueError(f"unknown direction {direction!r}")


def classify(miss: float, rules: Sequence[Rule]) -> str:
    if miss <= 0:
        return "green"
    for r in rules:
        if r.max_miss is None or miss <= r.max_miss:
            return r.status
    return "red"


def evaluate(
    value: float | None, ref: Reference | None, cfg: EvalConfig, prev: PrevState | None = None, *, was_red: bool = False
) -> Evaluation:
    """One period's status, given the previous period's state (for persistence and hysteresis).

    ``was_red``: this same period was already red before its value changed (a running period
    revised as data arrives, such as today's 311 figures): hysteresis applies within the period
    too, so a value hovering at the line does not flap between red and yellow."""
    value = _as_float(value)
    if value is None:
        return Evaluation("grey", "grey", None, 0, ref, "no value for the period")
    if ref is None:
        return Evaluation("grey", "grey", None, 0, None, no_reference_reason(cfg))
    miss = miss_of(value, ref, cfg.direction)
    if miss is None:
        return Evaluation("grey", "grey", None, 0, ref, "the miss cannot be computed")
    raw = classify(miss, cfg.rules)
    streak = ((prev.streak if prev else 0) + 1) if raw == "red" else 0
    status, reason = raw, _describe(raw, miss)
    if raw == "red" and streak < cfg.persistence:
        status = "yellow"
        reason = f"breaching {streak} of {cfg.persistence} periods needed for red ({_pct(miss)} worse)"
    if ((prev is not None and prev.status == "red") or was_red) and status != "red" and miss > cfg.recovery_within:
        status = "red"
        reason = f"still red: {_pct(miss)} worse; recovery needs {_pct(cfg.recovery_within)} or better"
    return Evaluation(status, raw, miss, streak, ref, reason)


@functools.lru_cache(maxsize=8192)
def _pct(x: float) -> str:
    # Cached: a bulk series of counts against round targets repeats the same few misses, and
    # float formatting was the largest single cost of evaluating one row.
    return f"{x * 100:.1f}%"


def _describe(status: str, miss: float) -> str:
    if miss <= 0:
        return "on target or better"
    return f"{_pct(miss)} worse than the reference"


def rank(status: str) -> int:
    return SEVERITY.get(status, -1)


_GREY_WHY = {
    "target": "no target set", "prior_period": "no value for the prior period",
    "same_period_last_year": "no value for the same period last year",
}


def no_reference_reason(cfg: EvalConfig) -> str:
    """Why a period with a value is grey when its basis gives no reference."""
    if cfg.basis == "history":
        return f"fewer than {cfg.history_min_points} earlier observations"
    return _GREY_WHY.get(cfg.basis, "no comparison basis")


# (status, raw_status, miss, streak, reason): one period's result, as ``evaluate`` gives it.
RunResult = tuple[str, str, float | None, int, str]


def evaluate_run(
    values: Sequence[float | None], refs: Sequence[Reference | None], cfg: EvalConfig, prev: PrevState | None = None,
    was_red: Sequence[bool] | None = None,
) -> list[RunResult]:
    """``evaluate`` over consecutive periods, each period's state feeding the next: the same
    results (tested against it) without an ``Evaluation`` object per period, for bulk series."""
    rules = [(r.max_miss, r.status) for r in cfg.rules]
    direction, persistence, recovery = cfg.direction, cfg.persistence, cfg.recovery_within
    no_ref = no_reference_reason(cfg)
    prev_status = prev.status if prev is not None else None
    prev_streak = prev.streak if prev is not None else 0
    isfinite = math.isfinite
    out: list[RunResult] = []
    append = out.append
    for k, value in enumerate(values):
        if type(value) is not float:  # ints and odd types: evaluate's own coercion
            value = _as_float(value)
        if value is None or not isfinite(value):
            r: RunResult = ("grey", "grey", None, 0, "no value for the period")
        elif (ref := refs[k]) is None:
            r = ("grey", "grey", None, 0, no_ref)
        else:
            m = _raw_miss(value, ref, direction)
            if m != m:
                r = ("grey", "grey", None, 0, "the miss cannot be computed")
            else:
                if m <= 0:
                    raw = "green"
                else:
                    raw = "red"
                    for bound, st in rules:
                        if bound is None or m <= bound:
                            raw = st
                            break
                streak = prev_streak + 1 if raw == "red" else 0
                status = raw
                reason = None
                if raw == "red" and streak < persistence:
                    status = "yellow"
                    reason = f"breaching {streak} of {persistence} periods needed for red ({_pct(m)} worse)"
                if (prev_status == "red" or (was_red is not None and was_red[k])) and status != "red" and m > recovery:
                    status = "red"
                    reason = f"still red: {_pct(m)} worse; recovery needs {_pct(recovery)} or better"
                r = (status, raw, m, streak, reason if reason is not None else _describe(raw, m))
        append(r)
        prev_status, prev_streak = r[0], r[3]
    return out
