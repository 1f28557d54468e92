"""What the escalation domain needs besides the database: the service's own settings, the
business calendar, the clock and the directory client. Built once by each composition root
(``main.create_app``, ``worker.build_worker``) and passed as ``f(uow, deps, *, ...)``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated

from fastapi import Depends, Request

from citystat_common.calendar import BusinessCalendar
from citystat_common.db import utcnow
from citystat_common.web import app_deps
from escalation.config import Settings
from escalation.routing import DirectoryClient


@dataclass
class Deps:
    settings: Settings
    calendar: BusinessCalendar
    directory: DirectoryClient | None = None
    clock: Callable[[], datetime] = field(default=utcnow)

    @classmethod
    def build(
        cls, settings: Settings, directory: DirectoryClient | None = None, clock: Callable[[], datetime] = utcnow
    ) -> Deps:
        return cls(settings=settings, calendar=BusinessCalendar(timezone=settings.city_timezone), directory=directory,
                   clock=clock)

    def now(self) -> datetime:
        return self.clock()

    def local_date(self, moment: datetime) -> date:
        """The city's date at ``moment`` (due dates and project health are counted in it)."""
        return moment.astimezone(self.calendar.tz).date()

    def channels(self) -> list[str]:
        chans = [c for c in self.settings.notifiers if c != "email"]  # email: per recipient (notices.notify)
        if self.settings.webhook_url and "webhook" not in chans:
            chans.append("webhook")
        return chans


def get_deps(request: Request) -> Deps:
    """The web process's Deps, built in the app's lifespan (``main.create_app``)."""
    deps: Deps = request.app.state.deps
    return deps


EscalationDeps = Annotated[Deps, Depends(app_deps)]
