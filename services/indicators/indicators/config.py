from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from citystat_common.settings import ServiceSettings, service_settings_config

Frequency = Literal["daily", "weekly", "monthly", "quarterly", "annual"]


class Settings(ServiceSettings):
    """``INDICATORS_*`` variables; KAFKA_BOOTSTRAP, API_KEYS_FILE and CITY_TIMEZONE are shared."""

    model_config = service_settings_config("INDICATORS_")
    service_name: str = "indicators"
    port: int = 8002
    database_url: str = "sqlite+aiosqlite:///var/indicators.db"

    directory_url: str = "http://127.0.0.1:8004"
    directory_timeout: float = Field(2.0, gt=0, le=30)
    # Where readers open a ticket's page (the escalation service's public address): tile links only.
    escalation_url: str = "http://127.0.0.1:8003"

    # Fiscal year: FY2027 runs from fiscal_year_start_month 2026 to the month before in 2027.
    fiscal_year_start_month: int = Field(7, ge=1, le=12)

    # City-wide default status rules: green within 5% on the wrong side, yellow within 10%, red beyond
    # ("a 10% move percolates"); leaving red needs the miss back within recovery_within.
    green_within: float = Field(0.05, ge=0)
    yellow_within: float = Field(0.10, ge=0)
    recovery_within: float = Field(0.05, ge=0)
    persistence: int = Field(1, ge=1, le=52)
    history_window: int = Field(8, ge=2, le=520)
    history_k: float = Field(2.0, gt=0)
    history_min_points: int = Field(3, ge=2)

    # 311-derived indicators.
    derived_frequency: Frequency = "monthly"
    derived_sla_target: float = Field(80.0, ge=0, le=100)
    derived_satisfaction_target: float = Field(4.0, ge=1, le=5)
    derived_refresh_seconds: float = Field(60.0, gt=0)
    derived_max_periods: int = Field(400, ge=1)  # a late event recomputes at most this many periods

    # History backfill (issue 20): an imported batch's requests are read from intake311's admin API
    # (scope staff) in keyset pages, one transaction per page, then every period is recomputed once.
    intake311_url: str = "http://127.0.0.1:8001"
    intake311_api_key: str = ""  # a key with scope staff; empty: no backfill (logged, the job waits)
    intake311_timeout: float = Field(30.0, gt=0, le=300)
    backfill_page_size: int = Field(1000, ge=1, le=5000)
    backfill_poll_seconds: float = Field(5.0, gt=0)  # how often the worker looks for a backfill to run
    backfill_lease_seconds: float = Field(300.0, ge=10)  # a worker's claim on a backfill, renewed every page

    # Stat by area (issue 21): the boundary layers (intake311's layer codes) whose areas get their own
    # derived 311 indicators, e.g. INDICATORS_STAT_AREA_LAYERS=ward,council_district; empty: none.
    stat_area_layers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Area x department figures too (the district's departments side by side).
    stat_area_departments: bool = True
    # The department code the area-wide figures are filed under (the city's 311 as a whole).
    stat_area_department: str = Field("CITYWIDE", min_length=1, max_length=40)
    # Where the areas' boundaries are read for the map (intake311's public GET /areas/{layer}.geojson).
    # (the boundaries come from intake311_url, above)
    area_map_timeout: float = Field(2.0, gt=0, le=30)  # a page waits no longer for the boundaries
    area_map_cache_seconds: float = Field(300.0, ge=0)

    # Worker schedulers.
    scheduler_interval_seconds: float = Field(15.0, gt=0)
    scheduler_batch: int = Field(500, ge=1)

    # Bulk ingest.
    bulk_max_rows: int = Field(500_000, ge=1)
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024)  # bulk ingest: ~1,000,000 CSV rows per call
    bulk_chunk_rows: int = Field(5_000, ge=100)

    dashboard_refresh_seconds: int = Field(60, ge=0)

    @field_validator("stat_area_layers", mode="before")
    @classmethod
    def _layers(cls, value: Any) -> Any:
        """``ward,council`` or a JSON list; each an intake311 layer code."""
        if isinstance(value, str):
            value = [v.strip() for v in value.strip().strip("[]").replace('"', "").split(",") if v.strip()]
        for layer in value:
            if not isinstance(layer, str) or not _LAYER.match(layer):
                raise ValueError(f"{layer!r}: a layer code is 1-40 lower-case letters, digits and _, starting with a letter")
        return list(dict.fromkeys(value))


_LAYER = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
