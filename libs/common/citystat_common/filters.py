"""The list endpoints' optional filters: ``?status=open&channel=phone`` narrow a select, a filter
left out narrows nothing."""

from __future__ import annotations

from typing import Any, TypeVar

from citystat_common.pagination import AnySelect

S = TypeVar("S", bound=AnySelect)


def where_given(stmt: S, *filters: tuple[Any, str | None]) -> S:
    """``stmt`` narrowed to ``column == value`` for each (column, value) whose value was given: a
    query parameter left out (None) or sent empty narrows nothing."""
    for column, value in filters:
        if value:
            stmt = stmt.where(column == value)
    return stmt
