import pytest
from ind_helpers import CITY_TIMEZONE, preload_departments  # beside this file (pyproject's pytest pythonpath)

from citystat_common.testing import TEST_KEY_ENTRIES, app_client
from indicators.config import Settings
from indicators.main import create_app


@pytest.fixture
def indicators_settings(db_factory, broker):
    return Settings(
        database_url=db_factory("indicators"), api_keys=TEST_KEY_ENTRIES, kafka_bootstrap=broker.bootstrap,
        directory_url="http://127.0.0.1:9",  # nothing listens: the local copy must answer
        directory_timeout=0.5, city_timezone=CITY_TIMEZONE,
    )


@pytest.fixture
async def app(indicators_settings):
    return create_app(indicators_settings)


@pytest.fixture
async def client(app):
    async with app_client(app) as c:
        await preload_departments(app)
        yield c
