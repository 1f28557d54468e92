"""intake311 app factory: the composition root of the web process (nothing built at import)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from citystat_common.runtime import api_main
from citystat_common.web import ServiceContext, build_app, check_broker, check_consumer, check_database
from intake311.api import router as staff_router
from intake311.api_open311 import router as open311_router
from intake311.config import Settings
from intake311.models import PLUMBING


def create_app(settings: Settings | None = None, *, directory_client: httpx.AsyncClient | None = None) -> FastAPI:
    """``directory_client``: how to reach the directory service (default: httpx to INTAKE311_DIRECTORY_URL)."""
    settings = settings or Settings()

    async def startup(ctx: ServiceContext) -> None:
        ctx.extras["directory"] = directory_client or httpx.AsyncClient(
            base_url=settings.directory_url, timeout=settings.directory_timeout
        )

    async def shutdown(ctx: ServiceContext) -> None:
        if directory_client is None:
            await ctx.extras["directory"].aclose()

    app = build_app(
        settings=settings,
        tables=PLUMBING,
        title="CityStat intake311",
        description=(
            "The city's 311 front door: a complete Open311 GeoReport v2 server (XML and JSON, at the root and "
            "under /open311/v2) with service levels and expected times, hand-off to the owning department, "
            "the request lifecycle, duplicate detection, customer feedback and bulk export."
        ),
        routers=[staff_router],
        readiness=[check_database, check_broker, check_consumer(settings.consumer_group)],
        on_startup=startup,
        on_shutdown=shutdown,
    )
    app.include_router(open311_router)
    app.include_router(open311_router, prefix="/open311/v2")
    return app


def run() -> None:
    api_main(package="intake311", settings_factory=Settings)
