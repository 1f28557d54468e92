"""Issue 22: the trend rule (MMR: neutral within 10%, judged against the desired direction) and the
order that puts what is wrong first. Pure rules, no I/O."""

from dataclasses import dataclass

import pytest

from indicators.board_order import per_service_311, severity, summary_line
from indicators.trend import trend_of


@pytest.mark.parametrize(("values", "desired", "direction", "desirable"), [
    ([100, 120], "up", "up", True),
    ([100, 120], "down", "up", False),
    ([100, 80], "down", "down", True),
    ([100, 80], "up", "down", False),
    ([100, 110], "up", "neutral", None),  # exactly 10%: still neutral
    ([100, 90], "down", "neutral", None),
    ([100, 111], "band", "up", None),  # a range has no better direction
    ([0, 0], "up", "neutral", None),
    ([0, 5], "up", "up", True),
    ([-10, -5], "up", "up", True),  # relative to the size of the first figure
    ([100, 300, 105], "up", "neutral", None),  # first and latest, as the MMR reads it
])
def test_trend_against_the_desired_direction(values, desired, direction, desirable):
    t = trend_of(values, desired)
    assert t is not None and (t.direction, t.desirable, t.periods) == (direction, desirable, len(values))


def test_too_few_periods_have_no_trend():
    assert trend_of([], "up") is None and trend_of([5.0], "up") is None and trend_of([float("nan"), 4], "up") is None


def test_trend_words():
    assert trend_of([100, 50], "up").words == "down (not desirable) over 2 periods"
    assert trend_of([100, 101, 102], "up").words == "neutral over 3 periods"


@dataclass
class T:
    code: str
    state: str
    critical: bool = False
    miss: float | None = None


def test_what_is_wrong_comes_first():
    tiles = [T("g", "green"), T("b", "baseline"), T("n", "no_report"), T("y", "yellow", miss=0.07),
             T("r_small_crit", "red", critical=True, miss=0.2), T("r_big", "red", miss=0.9),
             T("r_big_crit", "red", critical=True, miss=0.5), T("y_crit", "yellow", critical=True, miss=0.06),
             T("r_override", "red", miss=None)]
    assert [t.code for t in sorted(tiles, key=severity)] == [
        "r_big_crit", "r_small_crit", "r_big", "r_override", "y_crit", "y", "n", "b", "g"]


def test_summary_line_and_311_by_service():
    assert summary_line(["green", "red", "no_report", "red", "baseline"]) == (
        "2 red, 1 no report, 1 building a baseline, 1 green")
    assert summary_line([]) == "no figures"
    assert per_service_311("311.STREETS.POTHOLE.opened", "311")
    assert not per_service_311("311.STREETS.opened", "311") and not per_service_311("A.B.C.D", None)
