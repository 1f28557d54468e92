"""What the indicators domain needs besides the unit of work: the service's own settings (typed, no
cast), a clock, and the directory port. Built once by each composition root (``main.create_app``,
``worker.build_worker``) and passed as ``f(uow, deps, *, ...)``; a route asks for it with the ``Deps``
alias."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from citystat_common.db import utcnow
from citystat_common.directory import Departments
from citystat_common.web import app_deps
from indicators.area_maps import AreaMaps
from indicators.config import Settings
from indicators.intake311_client import ImportedRequests


@dataclass(frozen=True)
class IndicatorsDeps:
    settings: Settings
    # Where a department missing from the local copy is looked up; None in the worker, which creates
    # only the 311 derivation's indicators and takes their departments as given.
    directory: Departments | None = None
    clock: Callable[[], datetime] = utcnow
    # Where an imported batch's requests are read (the history backfill); None in the api process.
    intake311: ImportedRequests | None = None
    # Where the map pages read the areas' boundaries (intake311); None in the worker, which draws none.
    area_maps: AreaMaps | None = None

    def now(self) -> datetime:
        return self.clock()


def get_deps(request: Request) -> IndicatorsDeps:
    deps: IndicatorsDeps = request.app.state.deps
    return deps


Deps = Annotated[IndicatorsDeps, Depends(app_deps)]
