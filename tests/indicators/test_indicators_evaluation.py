"""Evaluation tables (each basis, each direction, persistence, hysteresis, missing data) and
properties (never raises; status monotonic in the size of the miss). Pure functions, no I/O."""

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indicators.evaluation import (
    EvalConfig,
    PrevState,
    Rule,
    default_rules,
    evaluate,
    rank,
    reference_for,
    validate_rules,
)


def run(values, cfg, *, targets=None, history=None):
    """Evaluate a series period by period, as the service does; returns the statuses."""
    out, prev = [], None
    for i, v in enumerate(values):
        ref = reference_for(
            cfg,
            target=(targets[i] if targets else None),
            prior=values[i - 1] if i > 0 else None,
            history=(history or []) + values[:i],
        )
        ev = evaluate(v, ref, cfg, prev)
        out.append(ev.status)
        prev = PrevState(ev.status, ev.streak)
    return out


# --- each basis x each direction ------------------------------------------------------------

TARGET_TABLE = [
    # direction, target, value, status        (defaults: green <= 5% worse, yellow <= 10%, red beyond)
    ("up", 100, 120, "green"),
    ("up", 100, 100, "green"),
    ("up", 100, 95, "green"),  # exactly 5% worse
    ("up", 100, 94, "yellow"),
    ("up", 100, 90, "yellow"),
    ("up", 100, 89.9, "red"),
    ("down", 10, 5, "green"),
    ("down", 10, 10.5, "green"),
    ("down", 10, 10.8, "yellow"),
    ("down", 10, 11.01, "red"),
    ("band", 50, 50, "green"),
    ("band", 50, 52.5, "green"),  # inside the ±5% band
    ("band", 50, 47.5, "green"),
    ("band", 50, 55, "green"),  # band 47.5..52.5: 2.5 outside / 50 = 5%
    ("band", 50, 58, "red"),  # 5.5 / 50 = 11%
    ("band", 50, 44, "yellow"),  # 3.5 / 50 = 7%
    ("band", 50, 40, "red"),
    ("band", 50, 62, "red"),
]


@pytest.mark.parametrize("direction,target,value,expected", TARGET_TABLE)
def test_target_basis(direction, target, value, expected):
    cfg = EvalConfig(direction=direction, basis="target")
    ref = reference_for(cfg, target=target)
    ev = evaluate(value, ref, cfg)
    assert ev.status == expected, (ev, expected)


@pytest.mark.parametrize(
    "direction,values,expected",
    [
        ("up", [100, 96, 85, 120], ["grey", "green", "red", "green"]),  # 96->85: 11.5% down
        ("down", [100, 104, 115, 100], ["grey", "green", "red", "green"]),
        ("band", [100, 100, 112, 110], ["grey", "green", "yellow", "green"]),  # 112: 7% outside 95..105
    ],
)
def test_prior_period_basis(direction, values, expected):
    cfg = EvalConfig(direction=direction, basis="prior_period")
    assert run(values, cfg) == expected


@pytest.mark.parametrize(
    "direction,value,last_year,expected",
    [("up", 80, 100, "red"), ("up", 93, 100, "yellow"), ("down", 80, 100, "green"), ("down", 111, 100, "red"),
     ("band", 100, 100, "green"), ("band", 120, 100, "red"), ("up", 50, None, "grey")],
)
def test_same_period_last_year_basis(direction, value, last_year, expected):
    cfg = EvalConfig(direction=direction, basis="same_period_last_year")
    ev = evaluate(value, reference_for(cfg, last_year=last_year), cfg)
    assert ev.status == expected


@pytest.mark.parametrize(
    "direction,value,expected",
    [
        ("up", 100, "green"), ("up", 96, "green"),  # mean 100, sd 2: lower edge 96
        ("up", 91.5, "green"),  # (96 - 91.5) / 100 = 4.5% beyond the lower edge
        ("up", 88, "yellow"), ("up", 85, "red"),
        ("down", 104, "green"), ("down", 115, "red"), ("down", 110, "yellow"),
        ("band", 100, "green"), ("band", 80, "red"), ("band", 120, "red"), ("band", 110, "yellow"),
    ],
)
def test_history_basis_mean_plus_k_sd(direction, value, expected):
    history = [98, 102, 98, 102, 98, 102, 98, 102]  # mean 100, population sd 2
    cfg = EvalConfig(direction=direction, basis="history", history_k=2.0, history_window=8)
    ref = reference_for(cfg, history=history)
    assert (ref.centre, ref.low, ref.high) == (100, 96, 104)
    ev = evaluate(value, ref, cfg)
    edge = 96 if direction == "up" else 104
    miss = {"up": (edge - value) / 100, "down": (value - edge) / 100,
            "band": max(96 - value, value - 104) / 100}[direction]
    independent = "green" if miss <= 0.05 else "yellow" if miss <= 0.10 else "red"
    assert ev.status == independent == expected


def test_history_needs_enough_points_and_uses_the_window():
    cfg = EvalConfig(direction="up", basis="history", history_min_points=3, history_window=3)
    assert reference_for(cfg, history=[1, 2]) is None
    ref = reference_for(cfg, history=[1000, 10, 10, 10])  # only the last 3 count
    assert ref.centre == 10 and ref.low == 10


def test_rules_are_configurable_and_first_match_wins():
    cfg = EvalConfig(direction="up", basis="target",
                     rules=validate_rules([{"status": "green", "max_miss": 0.01}, {"status": "red"}]))
    assert evaluate(98.5, reference_for(cfg, target=100), cfg).status == "red"
    assert evaluate(99.5, reference_for(cfg, target=100), cfg).status == "green"


@pytest.mark.parametrize(
    "rules",
    [[], [{"status": "red", "max_miss": 0.1}, {"status": "green"}], [{"status": "green", "max_miss": 0.2},
     {"status": "yellow", "max_miss": 0.1}, {"status": "red"}], [{"status": "green", "max_miss": 0.1}],
     [{"status": "blue"}]],
)
def test_bad_rules_are_refused(rules):
    with pytest.raises(ValueError):
        validate_rules(rules)


# --- persistence and hysteresis ---------------------------------------------------------------


def test_persistence_red_only_after_n_consecutive_breaches():
    cfg = EvalConfig(direction="up", basis="target", persistence=3)
    values = [100, 80, 80, 80, 80, 100, 80]
    assert run(values, cfg, targets=[100] * 7) == ["green", "yellow", "yellow", "red", "red", "green", "yellow"]


def test_persistence_default_is_one():
    cfg = EvalConfig(direction="up", basis="target")
    assert run([100, 80], cfg, targets=[100, 100]) == ["green", "red"]


def test_hysteresis_no_flapping_at_the_line():
    # red beyond 10%; once red, recovery only within 3%
    cfg = EvalConfig(direction="up", basis="target", recovery_within=0.03)
    values = [89, 91, 89, 91, 93, 96, 98, 94]
    assert run(values, cfg, targets=[100] * 8) == ["red", "red", "red", "red", "red", "red", "green", "yellow"]
    # without hysteresis (recovery at the red line) the same series flaps
    flappy = EvalConfig(direction="up", basis="target", recovery_within=0.10)
    assert run(values, flappy, targets=[100] * 8)[:4] == ["red", "yellow", "red", "yellow"]


def test_hysteresis_holds_red_for_a_down_indicator_too():
    cfg = EvalConfig(direction="down", basis="target", recovery_within=0.02)
    assert run([112, 105, 101], cfg, targets=[100] * 3) == ["red", "red", "green"]


def test_hysteresis_within_a_running_period():
    cfg = EvalConfig(direction="up", basis="target", recovery_within=0.05)
    ref = reference_for(cfg, target=80)
    assert evaluate(72, ref, cfg).status == "yellow"  # first value of the period: 10% worse
    assert evaluate(72, ref, cfg, was_red=True).status == "red"  # revised after it had been red
    assert evaluate(77, ref, cfg, was_red=True).status == "green"  # 3.75% worse: recovered


# --- missing data -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf])
def test_no_value_is_grey_not_green(value):
    cfg = EvalConfig(direction="up", basis="target")
    ev = evaluate(value, reference_for(cfg, target=100), cfg)
    assert ev.status == "grey"


def test_no_reference_is_grey_with_a_reason():
    cfg = EvalConfig(direction="up", basis="target")
    ev = evaluate(50, reference_for(cfg, target=None), cfg)
    assert ev.status == "grey" and "no target" in ev.reason


def test_zero_target_uses_absolute_miss():
    cfg = EvalConfig(direction="down", basis="target")
    assert evaluate(0, reference_for(cfg, target=0), cfg).status == "green"
    assert evaluate(0.5, reference_for(cfg, target=0), cfg).status == "red"


# --- overrides with expiry (the effective status) ----------------------------------------------


def test_effective_status_override_and_expiry():
    from indicators.models import Indicator, Override
    from indicators.service import effective_status

    now = datetime(2026, 11, 1, tzinfo=UTC)
    ind = Indicator(computed_status="red", status_reason="12% worse", missing=False, next_due_at=now + timedelta(days=30))
    o = Override(status="yellow", reason="contractor strike, plan agreed", created_by="analyst",
                 expires_at=now + timedelta(days=7), cleared_at=None)
    assert effective_status(ind, None, now)[0] == "red"
    assert effective_status(ind, o, now)[:3] == ("yellow", True, "contractor strike, plan agreed")
    assert effective_status(ind, o, now + timedelta(days=8))[0] == "red"  # expired
    ind.next_due_at = now - timedelta(hours=1)
    assert effective_status(ind, None, now)[0] == "grey"  # due period passed: missing
    assert effective_status(ind, o, now)[0] == "yellow"  # judgement wins over missing data


# --- properties ---------------------------------------------------------------------------------

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30))
bases = st.sampled_from(["target", "prior_period", "same_period_last_year", "history"])
directions = st.sampled_from(["up", "down", "band"])


@settings(max_examples=400, deadline=None)
@given(value=numbers, target=st.one_of(st.none(), numbers), history=st.lists(numbers, max_size=12),
       basis=bases, direction=directions, k=st.floats(0.01, 10), persistence=st.integers(1, 5),
       prev=st.one_of(st.none(), st.tuples(st.sampled_from(["green", "yellow", "red", "grey"]), st.integers(0, 9))))
def test_evaluation_never_raises(value, target, history, basis, direction, k, persistence, prev):
    cfg = EvalConfig(direction=direction, basis=basis, history_k=k, persistence=persistence)
    ref = reference_for(cfg, target=target, prior=target, last_year=target, history=history)
    ev = evaluate(value, ref, cfg, PrevState(*prev) if prev else None)
    assert ev.status in ("green", "yellow", "red", "grey")
    assert ev.miss is None or not math.isnan(ev.miss)


@settings(max_examples=400, deadline=None)
@given(target=st.floats(-1e6, 1e6, allow_nan=False), a=st.floats(0, 10), b=st.floats(0, 10),
       direction=directions, basis=st.sampled_from(["target", "prior_period", "same_period_last_year"]),
       g=st.floats(0, 0.5), y=st.floats(0, 0.5))
def test_status_is_monotonic_in_the_size_of_the_miss(target, a, b, direction, basis, g, y):
    rules = validate_rules([{"status": "green", "max_miss": g}, {"status": "yellow", "max_miss": g + y + 1e-9},
                            {"status": "red"}])
    cfg = EvalConfig(direction=direction, basis=basis, rules=rules)
    ref = reference_for(cfg, target=target, prior=target, last_year=target)
    scale = abs(target) if abs(target) > 1e-12 else 1.0
    small, big = sorted([a, b])

    def worse(m):  # a value that misses by m (relative), on the wrong side
        return (ref.low - m * scale) if direction in ("up", "band") else (ref.high + m * scale)

    s1 = evaluate(worse(small), ref, cfg).status
    s2 = evaluate(worse(big), ref, cfg).status
    assert rank(s1) <= rank(s2), (s1, s2)


@settings(max_examples=200, deadline=None)
@given(misses=st.lists(st.floats(-1, 2), min_size=2, max_size=12), persistence=st.integers(1, 4),
       rec=st.floats(0, 0.1))
def test_with_state_a_bigger_miss_is_never_milder(misses, persistence, rec):
    """Same history, last period missing by more: the status is never milder (state included)."""
    cfg = EvalConfig(direction="up", basis="target", persistence=persistence, recovery_within=rec)
    ref = reference_for(cfg, target=100.0)
    prev = None
    for m in misses[:-1]:
        ev = evaluate(100 - 100 * m, ref, cfg, prev)
        prev = PrevState(ev.status, ev.streak)
    last = misses[-1]
    s1 = evaluate(100 - 100 * last, ref, cfg, prev).status
    s2 = evaluate(100 - 100 * (last + 0.5), ref, cfg, prev).status
    assert rank(s1) <= rank(s2)


def test_default_rules_match_the_city_defaults():
    assert default_rules() == (Rule("green", 0.05), Rule("yellow", 0.10), Rule("red", None))


# --- evaluate_run: the bulk path's loop gives exactly evaluate's results ----------------------

_num = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6), st.just(0.0),
                 st.just(-0.0), st.sampled_from([94.9, 95.0, 100.0, 105.0, 110.0, 120.0]))


@st.composite
def _runs(draw):
    from indicators.evaluation import Reference

    basis = draw(st.sampled_from(["target", "prior_period", "same_period_last_year", "history", "nonsense"]))
    direction = draw(st.sampled_from(["up", "down", "band"]))
    g = draw(st.floats(0, 0.3))
    rules = draw(st.sampled_from([default_rules(), default_rules(g, g + 0.05),
                                  (Rule("green", 0.0), Rule("red", None)), (Rule("red", None),)]))
    cfg = EvalConfig(direction=direction, basis=basis, rules=rules, persistence=draw(st.integers(1, 4)),
                     recovery_within=draw(st.floats(0, 0.2)), history_min_points=draw(st.integers(2, 4)))
    n = draw(st.integers(0, 25))
    values = draw(st.lists(_num, min_size=n, max_size=n))
    refs = []
    for _ in range(n):
        c = draw(st.one_of(st.none(), st.floats(-1e6, 1e6), st.just(0.0), st.just(100.0)))
        spread = draw(st.floats(0, 50))
        refs.append(None if c is None else Reference(basis, c, c - spread, c + spread))
    prev = draw(st.one_of(st.none(), st.builds(PrevState, st.sampled_from(["green", "yellow", "red", "grey"]),
                                               st.integers(0, 5))))
    was_red = draw(st.one_of(st.none(), st.lists(st.booleans(), min_size=n, max_size=n)))
    return cfg, values, refs, prev, was_red


@settings(max_examples=400, deadline=None)
@given(_runs())
def test_evaluate_run_equals_evaluate_period_by_period(case):
    from indicators.evaluation import evaluate_run

    cfg, values, refs, prev, was_red = case
    want = []
    for k, (v, ref) in enumerate(zip(values, refs, strict=True)):
        ev = evaluate(v, ref, cfg, prev, was_red=bool(was_red and was_red[k]))
        want.append((ev.status, ev.raw_status, ev.miss, ev.streak, ev.reason))
        prev = PrevState(ev.status, ev.streak)
    got = evaluate_run(values, refs, cfg, case[3], was_red)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g[:2] == w[:2] and g[3:] == w[3:], (g, w)
        assert g[2] == w[2] or (g[2] != g[2] and w[2] != w[2]), (g, w)  # same miss (NaN never stored)
