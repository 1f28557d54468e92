from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from citystat_common.settings import ServiceSettings, service_settings_config
from intake311.areas import Extent
from intake311.open311 import CHANNELS, CLOSURE_REASONS


class Settings(ServiceSettings):
    """``INTAKE311_*`` variables; KAFKA_BOOTSTRAP, API_KEYS_FILE and CITY_TIMEZONE are shared."""

    model_config = service_settings_config("INTAKE311_")
    service_name: str = "intake311"
    port: int = 8001
    database_url: str = "sqlite+aiosqlite:///var/intake311.db"

    # The directory service, asked when the catalog names a department the local copy lacks.
    directory_url: str = "http://127.0.0.1:8004"
    directory_timeout: float = Field(2.0, gt=0, le=30)

    # Open311
    jurisdiction_id: str = "city.example.gov"
    contact: str = "311 Contact Centre: dial 311 or +1 215-555-0311, open311@city.example.gov"
    key_service: str = "Ask the 311 Contact Centre for an API key: open311@city.example.gov"
    max_results: int = Field(1000, ge=1, le=10_000)
    default_channel: str = "web"
    # The city's vocabularies (a history import maps its export's values onto them); "unknown" and
    # "other" are for what an old system did not record or has no word for.
    channels: list[Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,20}$")]] = Field(
        default_factory=lambda: list(CHANNELS), min_length=1)
    closure_reasons: list[Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,40}$")]] = Field(
        default_factory=lambda: list(CLOSURE_REASONS), min_length=1)

    # History import through the admin API (larger files: intake311-worker import-requests).
    import_max_bytes: int = Field(8_000_000, ge=1000, le=500_000_000)  # and within MAX_BODY_BYTES
    import_batch_rows: int = Field(5000, ge=1, le=100_000)  # rows per committed batch

    # Duplicate detection: same service, within this radius and time window of an open request.
    duplicate_radius_m: float = Field(50.0, ge=0, le=5000)
    duplicate_window_hours: float = Field(72.0, ge=0, le=24 * 365)

    # The POST path: how long a process trusts its in-memory catalog (0: read it every time), and
    # how many concurrent requests may share one transaction (group commit; 1: one each).
    catalog_cache_seconds: float = Field(5.0, ge=0, le=300)
    intake_max_batch: int = Field(100, ge=1, le=1000)
    intake_concurrent_batches: int = Field(2, ge=1, le=16)  # transactions in flight (commits wait on the WAL)

    # The consumer group of the directory.changes consumer (the local department copy).
    consumer_group: str = "intake311"

    # Worker schedulers
    gauge_interval: float = Field(15.0, gt=0)
    batch_interval: float = Field(2.0, gt=0)
    statistics_interval: float = Field(5.0, gt=0, description="seconds between looks at service_requests' "
                                       "changes since its last ANALYZE (PostgreSQL)")

    # Geography (issue 21): how long an api process trusts its boundary layers before asking whether
    # one was loaded (0: every batch), and where the city can be, "min_long,min_lat,max_long,max_lat"
    # (WGS84): boundaries and addresses outside it are refused (it catches swapped lat/long).
    areas_check_seconds: float = Field(2.0, ge=0, le=300)
    city_extent: str | None = None

    @field_validator("city_extent")
    @classmethod
    def _extent(cls, value: str | None) -> str | None:
        Extent.parse(value)  # a ValueError names the expected form
        return value
