import pytest

from citystat_common.testing import TEST_KEY_ENTRIES, app_client
from directory.config import Settings
from directory.main import create_app


@pytest.fixture
def directory_settings(db_factory, broker):
    return Settings(database_url=db_factory("directory"), api_keys=TEST_KEY_ENTRIES, kafka_bootstrap=broker.bootstrap)


@pytest.fixture
async def client(directory_settings):
    async with app_client(create_app(directory_settings)) as c:
        yield c
