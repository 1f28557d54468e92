"""What intake311's domain needs besides the database: the service's own settings, the city's
clock and timezone, and the directory port (departments the local copy lacks). Built once by each
composition root (``main.create_app``, ``worker.build_worker``, ``import_command``) and passed as
``f(uow, deps, *, ...)``. The web process's POST path (the catalog snapshot and the group commit)
is ``FrontDoor``, beside it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, Request

from citystat_common.db import utcnow
from citystat_common.directory import Departments
from citystat_common.web import app_deps
from intake311.config import Settings

if TYPE_CHECKING:  # the POST path's parts import the domain, which takes Deps
    from citystat_common.batching import GroupCommit
    from intake311.areas_index import AreaIndex
    from intake311.catalog import CatalogCache
    from intake311.intake import NewRequestItem
    from intake311.service import CreatedRequest


@dataclass
class Deps:
    settings: Settings
    departments: Departments | None = None  # the directory (the web process asks it; the worker does not)
    clock: Callable[[], datetime] = field(default=utcnow)

    def now(self) -> datetime:
        return self.clock()

    @property
    def timezone(self) -> str:
        """The city's timezone name (service levels and local dates are counted in it)."""
        return self.settings.city_timezone

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.settings.city_timezone)


@dataclass
class FrontDoor:
    """The web process's POST path: the catalog as it reads it, the group commit it writes through and
    the boundary layers it tags requests with (issue 21)."""

    catalog: CatalogCache
    intake: GroupCommit[NewRequestItem, CreatedRequest]
    areas: AreaIndex


def get_deps(request: Request) -> Deps:
    """The web process's Deps, built in the app's lifespan (``main.create_app``)."""
    deps: Deps = request.app.state.deps
    return deps


def get_front_door(request: Request) -> FrontDoor:
    front: FrontDoor = request.app.state.front_door
    return front


Intake311Deps = Annotated[Deps, Depends(app_deps)]
async def _front_door(request: Request) -> FrontDoor:
    return get_front_door(request)


Intake311FrontDoor = Annotated[FrontDoor, Depends(_front_door)]
