from citystat_common.settings import ServiceSettings, service_settings_config


class Settings(ServiceSettings):
    """``DIRECTORY_*`` variables; KAFKA_BOOTSTRAP, API_KEYS_FILE and CITY_TIMEZONE are shared."""

    model_config = service_settings_config("DIRECTORY_")
    service_name: str = "directory"
    port: int = 8004
    database_url: str = "sqlite+aiosqlite:///var/directory.db"
