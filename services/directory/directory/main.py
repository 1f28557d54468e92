"""Directory app factory: the composition root of the web process (nothing built at import)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from citystat_common.db import utcnow
from citystat_common.runtime import api_main
from citystat_common.web import build_app, check_broker, check_database
from directory.api import router
from directory.config import Settings
from directory.deps import Deps
from directory.me import router as me_router
from directory.models import PLUMBING


def create_app(settings: Settings | None = None, *, clock: Callable[[], datetime] = utcnow) -> FastAPI:
    settings = settings or Settings()
    app = build_app(
        settings=settings,
        tables=PLUMBING,
        title="CityStat directory",
        description=(
            "Departments, deputy-mayor clusters, people and each department's senior team "
            "(OIT, HR, Budget and performance-office business partners, Customer Service Officer), "
            "with effective-dated history and routing of problems to the partner that fits."
        ),
        routers=[router, me_router],
        readiness=[check_database, check_broker],
    )
    app.state.deps = Deps(settings=settings, clock=clock)  # read by the routers (directory.deps.DirectoryDeps)
    return app


def run() -> None:
    api_main(package="directory", settings_factory=Settings)
