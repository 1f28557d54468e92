from datetime import date

import pytest

from indicators.periods import (
    fiscal_year,
    next_period,
    parse_period,
    period_of,
    periods_between,
    prev_period,
    same_period_last_year,
)


@pytest.mark.parametrize(
    "freq,d,label,start,end",
    [
        ("daily", date(2026, 3, 1), "2026-03-01", date(2026, 3, 1), date(2026, 3, 1)),
        ("weekly", date(2026, 1, 1), "2026-W01", date(2025, 12, 29), date(2026, 1, 4)),
        ("monthly", date(2024, 2, 10), "2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        ("quarterly", date(2026, 7, 1), "FY2027-Q1", date(2026, 7, 1), date(2026, 9, 30)),
        ("quarterly", date(2027, 6, 30), "FY2027-Q4", date(2027, 4, 1), date(2027, 6, 30)),
        ("annual", date(2026, 6, 30), "FY2026", date(2025, 7, 1), date(2026, 6, 30)),
    ],
)
def test_period_of(freq, d, label, start, end):
    p = period_of(freq, d, 7)
    assert (p.label, p.start, p.end) == (label, start, end)
    assert parse_period(freq, label, 7) == p
    assert next_period(prev_period(p, 7), 7) == p


def test_fiscal_year_and_same_period_last_year():
    assert fiscal_year(date(2026, 7, 1), 7) == 2027 and fiscal_year(date(2026, 6, 30), 7) == 2026
    assert fiscal_year(date(2026, 7, 1), 1) == 2026
    assert same_period_last_year(period_of("daily", date(2024, 2, 29))).start == date(2023, 2, 28)
    assert same_period_last_year(period_of("quarterly", date(2026, 8, 1))).label == "FY2026-Q1"
    assert same_period_last_year(period_of("weekly", date(2026, 3, 4))).label == "2025-W10"
    assert len(periods_between("monthly", date(2025, 11, 15), date(2026, 2, 1))) == 4


@pytest.mark.parametrize("freq,text", [("daily", "2026-10"), ("monthly", "FY2027"), ("daily", "2026-W10"),
                                       ("monthly", "nonsense"), ("weekly", "2026-13-01")])
def test_parse_refuses_ambiguous_or_bad(freq, text):
    with pytest.raises(ValueError):
        parse_period(freq, text)
