"""What the indicators API hands its domain functions besides the unit of work: the service's own
settings (typed, no cast), a clock, and the directory port. Built once in the lifespan
(``main.create_app``); a route asks for it with the ``Deps`` alias."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from citystat_common.db import utcnow
from citystat_common.directory import Departments
from indicators.config import Settings


@dataclass(frozen=True)
class IndicatorsDeps:
    settings: Settings
    directory: Departments  # where a department missing from the local copy is looked up
    clock: Callable[[], datetime] = utcnow

    def now(self) -> datetime:
        return self.clock()


def get_deps(request: Request) -> IndicatorsDeps:
    deps: IndicatorsDeps = request.app.state.indicators_deps
    return deps


Deps = Annotated[IndicatorsDeps, Depends(get_deps)]
