"""The derived 311 figures of many periods at once, from a scope's facts held in memory (the
history backfill's bulk path, issue 20). The definitions are ``derived311``'s (see its module
docs; ``derived311.compute_scope`` computes one period with queries): the same values, period by
period, here with sorted lists and bisection so that a year of days costs one read of the facts.

Pure: no database, no clock."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate

from indicators.derived311 import period_figures


@dataclass(frozen=True, slots=True)
class Line:
    """One request's fact as the figures read it."""

    requested: datetime | None
    expected: datetime | None
    closed: datetime | None
    first_contact: bool
    duplicate: bool
    feedback_score: int | None = None
    feedback_at: datetime | None = None


class ScopeFigures:
    """A scope's facts arranged once; ``period(start, end, now)`` gives ``compute_scope``'s values."""

    def __init__(self, lines: Iterable[Line]):
        lines = list(lines)
        dated = [(x.requested, x) for x in lines if x.requested is not None]
        self.requested = sorted(r for r, _ in dated)
        # each request closed: (closed, requested, expected, first contact, duplicate), by closing time
        self.closed = sorted([(x.closed, r, x.expected, x.first_contact, x.duplicate)
                              for r, x in dated if x.closed is not None], key=lambda t: t[0])
        self.closed_at = [c[0] for c in self.closed]
        # requested before c and closed before c <=> max(requested, closed) < c
        self.closed_by = sorted(max(c, r) for c, r, *_ in self.closed)
        promised = [(r, x.expected, x.closed) for r, x in dated if x.expected is not None and not x.duplicate]
        self.overdue_by = sorted(max(r, e) for r, e, _ in promised)
        self.overdue_closed_by = sorted(max(r, e, c) for r, e, c in promised if c is not None)
        # feedback counts whether or not the request itself has been seen (as compute_scope reads it)
        rated = sorted((x.feedback_at, x.feedback_score) for x in lines
                       if x.feedback_at is not None and x.feedback_score is not None)
        self.rated_at = [t for t, _ in rated]
        self.score_sums = [0, *accumulate(s for _, s in rated)]

    def period(self, start: datetime, end: datetime, now: datetime) -> dict[str, float | None]:
        c = min(end, now)
        opened = bisect_left(self.requested, c) - bisect_left(self.requested, start)
        rows = self.closed[bisect_left(self.closed_at, start) : bisect_left(self.closed_at, c)]
        real = [x for x in rows if not x[4]]
        hits = sum(1 for closed, _, expected, _, _ in real if expected is None or closed <= expected)
        backlog = bisect_left(self.requested, c) - bisect_left(self.closed_by, c)
        overdue = bisect_left(self.overdue_by, c) - bisect_left(self.overdue_closed_by, c)
        days = sorted((closed - requested).total_seconds() / 86400 for closed, requested, *_ in real)
        f0, f1 = bisect_left(self.rated_at, start), bisect_left(self.rated_at, c)
        return period_figures(opened=opened, closed=len(rows), real=len(real), hits=hits, overdue=overdue, days=days,
                              backlog=backlog, first_contact=sum(1 for x in real if x[3]),
                              satisfaction=(self.score_sums[f1] - self.score_sums[f0]) / (f1 - f0) if f1 > f0 else None)
