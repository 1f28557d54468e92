from citystat_common.settings import ServiceSettings, service_settings_config


class Settings(ServiceSettings):
    """``DIRECTORY_*`` variables; KAFKA_BOOTSTRAP, API_KEYS_FILE and CITY_TIMEZONE are shared."""

    model_config = service_settings_config("DIRECTORY_")
    service_name: str = "directory"
    port: int = 8004
    database_url: str = "sqlite+aiosqlite:///var/directory.db"
    # How often the worker looks for scheduled assignments that have started (a change is
    # published at most this late), and how many it takes at a time.
    schedule_interval_seconds: float = 30.0
    schedule_batch: int = 500
