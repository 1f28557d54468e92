"""Indicators app factory: the composition root of the web process (nothing built at import)."""

from __future__ import annotations

from fastapi import FastAPI

from citystat_common.directory import Departments, DirectoryDepartments
from citystat_common.runtime import api_main
from citystat_common.web import (
    ReadinessCheck,
    ServiceContext,
    build_app,
    check_broker,
    check_consumer,
    check_database,
)
from indicators.api import router
from indicators.api_observations import router as observations_router
from indicators.api_report import router as report_api_router
from indicators.api_targets import router as targets_router
from indicators.area_maps import AreaMaps, HttpAreaMaps
from indicators.config import Settings
from indicators.dashboard import router as dashboard_router
from indicators.dashboard_area_report import router as area_report_router
from indicators.dashboard_compare import router as compare_router
from indicators.dashboard_judgement import router as judgement_router
from indicators.dashboard_map import router as map_router
from indicators.dashboard_report import router as report_router
from indicators.deps import IndicatorsDeps
from indicators.handlers import GROUP_ID
from indicators.models import PLUMBING


def create_app(
    settings: Settings | None = None, *, check_worker: bool | None = None, directory: Departments | None = None,
    area_maps: AreaMaps | None = None,
) -> FastAPI:
    """``check_worker``: /readyz also needs the worker's consumer to have partitions; on by default
    when the settings come from the environment (the deployed api), off for tests passing settings.
    ``directory``: where departments missing from the local copy are looked up (default: the
    directory service at INDICATORS_DIRECTORY_URL). ``area_maps``: where the map pages read the areas'
    boundaries (default: intake311 at INDICATORS_INTAKE311_URL)."""
    readiness: list[ReadinessCheck] = [check_database, check_broker]
    if check_worker if check_worker is not None else settings is None:
        readiness.append(check_consumer(GROUP_ID))
    settings = settings or Settings()

    owned: list[DirectoryDepartments | HttpAreaMaps] = []

    async def startup(ctx: ServiceContext) -> None:
        port: Departments
        if directory is None:
            port = DirectoryDepartments.connect(settings.directory_url, settings.directory_timeout)
            owned.append(port)
        else:
            port = directory
        maps: AreaMaps
        if area_maps is None:
            maps = HttpAreaMaps.connect(settings.intake311_url, settings.area_map_timeout,
                                        cache_seconds=settings.area_map_cache_seconds)
            owned.append(maps)
        else:
            maps = area_maps
        app.state.deps = IndicatorsDeps(settings=settings, directory=port, area_maps=maps)

    async def shutdown(ctx: ServiceContext) -> None:
        for client in owned:
            await client.aclose()
        owned.clear()

    app = build_app(
        settings=settings,
        tables=PLUMBING,
        title="CityStat indicators",
        description=(
            "Indicator registry, targets and observations; red/yellow/green evaluation with persistence, "
            "hysteresis and staff overrides; 311-derived indicators; breach events on indicators.status; "
            "the color-coded dashboard at /dashboard."
        ),
        routers=[router, observations_router, targets_router, report_api_router, dashboard_router, compare_router,
                 judgement_router, report_router, area_report_router, map_router],  # the area report's path before the map's
        readiness=readiness,
        on_startup=startup,
        on_shutdown=shutdown,
    )
    return app


def run() -> None:
    api_main(package="indicators", settings_factory=Settings)
