"""Checks on the path and query parameters of every directory route, before any handler runs.

A NUL in a department code or a search term reached PostgreSQL, which refuses it in text: a 500.
One router-wide dependency covers every parameter, present and future, with a 422 naming it."""

from __future__ import annotations

from fastapi import Request

from citystat_common.errors import Invalid
from directory.schemas import control_character


async def clean_parameters(request: Request) -> None:
    for name, value in [*request.path_params.items(), *request.query_params.multi_items()]:
        if isinstance(value, str) and (ch := control_character(value)) is not None:
            raise Invalid(f"{name} must not contain the control character {ch!r}", field=name)
