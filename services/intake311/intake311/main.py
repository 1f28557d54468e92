"""intake311 app factory: the composition root of the web process (nothing built at import)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import httpx
from fastapi import FastAPI

from citystat_common.batching import GroupCommit
from citystat_common.directory import DirectoryDepartments
from citystat_common.runtime import api_main
from citystat_common.uow import UnitOfWork
from citystat_common.web import (
    ServiceContext,
    add_hot_route,
    build_app,
    check_broker,
    check_consumer,
    check_database,
)
from intake311.api import router as staff_router
from intake311.api_catalog import router as catalog_router
from intake311.api_imports import router as imports_router
from intake311.api_open311 import post_request_hot
from intake311.api_open311 import router as open311_router
from intake311.areas_api import router as areas_router
from intake311.areas_index import AreaIndex
from intake311.catalog import CatalogCache
from intake311.config import Settings
from intake311.deps import Deps, FrontDoor
from intake311.intake import NewRequestItem, write_new_requests
from intake311.models import PLUMBING
from intake311.pages import install_pages
from intake311.refusals import bad_input, rate_limited
from intake311.service import CreatedRequest, RequestNumbers


def create_app(settings: Settings | None = None, *, directory_client: httpx.AsyncClient | None = None) -> FastAPI:
    """``directory_client``: how to reach the directory service (default: httpx to INTAKE311_DIRECTORY_URL)."""
    settings = settings or Settings()

    async def startup(ctx: ServiceContext) -> None:
        directory = (
            DirectoryDepartments(directory_client, owned=False) if directory_client is not None
            else DirectoryDepartments.connect(settings.directory_url, settings.directory_timeout)
        )
        # read by the routers through intake311.deps (Intake311Deps, get_front_door)
        app.state.deps = deps = Deps(settings=settings, departments=directory)
        numbers = RequestNumbers(block=200)
        area_index = AreaIndex(ctx.uow, ttl=settings.areas_check_seconds)  # issue 21: boundary layers

        async def write(uow: UnitOfWork, items: Sequence[NewRequestItem]) -> list[CreatedRequest]:
            return await write_new_requests(uow, deps, items=items, numbers=numbers, areas=area_index)

        app.state.front_door = FrontDoor(
            catalog=CatalogCache(ctx.uow, timezone=settings.city_timezone, ttl=settings.catalog_cache_seconds),
            intake=GroupCommit(
                # one statement per batch, no transaction round trips (see UnitOfWork single_statement)
                uow_factory=partial(ctx.uow, single_statement=True), write=write,
                max_batch=settings.intake_max_batch,
                # SQLite has one writer: a second transaction of this process would only wait for the lock
                concurrency=1 if ctx.engine.dialect.name == "sqlite" else settings.intake_concurrent_batches,
                name="intake311_requests",
            ),
            areas=area_index,
        )
        app.state.directory = directory

    async def shutdown(ctx: ServiceContext) -> None:
        front: FrontDoor | None = getattr(app.state, "front_door", None)
        if front is not None:
            await front.intake.close()
        directory: DirectoryDepartments | None = getattr(app.state, "directory", None)
        if directory is not None:
            await directory.aclose()

    app = build_app(
        settings=settings,
        tables=PLUMBING,
        title="CityStat intake311",
        description=(
            "The city's 311 front door: a complete Open311 GeoReport v2 server (XML and JSON, at the root and "
            "under /open311/v2) with service levels and expected times, hand-off to the owning department, "
            "the request lifecycle, duplicate detection, customer feedback and bulk export."
        ),
        # Open311 first: routes match in order, and its GETs are the busiest after the POST (a HotRoute).
        routers=[open311_router, staff_router, catalog_router, imports_router, areas_router],
        readiness=[check_database, check_broker, check_consumer(settings.consumer_group)],
        on_startup=startup,
        on_shutdown=shutdown,
    )
    app.include_router(open311_router, prefix="/open311/v2")
    install_pages(app)  # the staff pages: the call-taker's and the department queue
    # refusals before a route runs: on an Open311 route in the spec's error format
    app.state.rate_limit_response = rate_limited
    app.state.bad_input_response = bad_input
    for prefix in ("", "/open311/v2"):  # the hot path: past FastAPI's routing, same handler
        add_hot_route(app, f"{prefix}/requests.{{fmt}}", post_request_hot, methods=["POST"])
    return app


def run() -> None:
    api_main(package="intake311", settings_factory=Settings)
