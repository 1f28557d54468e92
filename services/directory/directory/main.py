"""Directory app factory: the composition root of the web process (nothing built at import)."""

from __future__ import annotations

from fastapi import FastAPI

from citystat_common.runtime import api_main
from citystat_common.web import build_app, check_broker, check_database
from directory.api import router
from directory.config import Settings
from directory.me import router as me_router
from directory.models import PLUMBING


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_app(
        settings=settings or Settings(),
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


def run() -> None:
    api_main(package="directory", settings_factory=Settings)
