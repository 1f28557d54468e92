"""Escalation app factory: the composition root of the web process (nothing built at import)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import httpx
from fastapi import FastAPI

from citystat_common.db import utcnow
from citystat_common.runtime import api_main
from citystat_common.web import ServiceContext, build_app, check_broker, check_consumer, check_database
from escalation.admin_api import router as admin_router
from escalation.api import router
from escalation.board import router as board_router
from escalation.config import Settings
from escalation.deps import Deps
from escalation.models import PLUMBING
from escalation.page_forms import router as forms_router
from escalation.policies import ensure_default_policy
from escalation.worker import make_directory_client


def create_app(
    settings: Settings | None = None,
    *,
    directory_transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utcnow,
    check_worker: bool = True,
) -> FastAPI:
    settings = settings or Settings()

    async def startup(ctx: ServiceContext) -> None:
        # read by the routers through escalation.deps.EscalationDeps
        app.state.deps = Deps.build(settings, make_directory_client(settings, directory_transport), clock)
        async with ctx.uow() as uow:
            await ensure_default_policy(uow)  # also seeded by the demo loader; idempotent
            await uow.commit()

    async def shutdown(ctx: ServiceContext) -> None:
        deps: Deps | None = getattr(app.state, "deps", None)
        if deps is not None and deps.directory is not None:
            await deps.directory.aclose()

    readiness = [check_database, check_broker] + ([check_consumer(settings.consumer_group)] if check_worker else [])
    app = build_app(
        settings=settings,
        tables=PLUMBING,
        title="CityStat escalation",
        description=(
            "From a threshold breach to the right person: tickets (flags) routed to the department's "
            "senior-team partner, escalated up the chain (department head, deputy mayor, managing director) "
            "when nobody acts, with the timeline and action log that show what the city did; projects; reports; "
            "the ticket board at /board."
        ),
        routers=[router, admin_router, board_router, forms_router],
        readiness=readiness,
        on_startup=startup,
        on_shutdown=shutdown,
    )
    return app


def run() -> None:
    api_main(package="escalation", settings_factory=Settings)
