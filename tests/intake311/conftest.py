import pytest
from geo_helpers import EXTENT
from intake311_helpers import demo_catalog_database

from citystat_common.testing import TEST_KEY_ENTRIES, app_client
from intake311.config import Settings
from intake311.main import create_app

# Nothing listens on port 9: the broker and the directory are down unless a test brings its own.
NOWHERE = "127.0.0.1:9"


@pytest.fixture
def settings(db_kind, tmp_path):
    return Settings(
        database_url=demo_catalog_database(db_kind, tmp_path), api_keys=TEST_KEY_ENTRIES, kafka_bootstrap=NOWHERE,
        directory_url=f"http://{NOWHERE}", directory_timeout=1.0,
    )


@pytest.fixture
async def client(settings):
    async with app_client(create_app(settings)) as c:
        yield c


async def _units(url: str):
    from citystat_common.db import create_engine, session_factory
    from citystat_common.uow import UnitOfWork
    from intake311.models import PLUMBING

    engine = create_engine(url)
    sessions = session_factory(engine)
    yield lambda: UnitOfWork(sessions, PLUMBING)
    await engine.dispose()


@pytest.fixture
async def uow_factory(settings):
    """Units of work on the test database, for calling the domain functions directly."""
    async for units in _units(settings.database_url):
        yield units


@pytest.fixture
def geo_settings(settings):
    """The city's extent known (a point outside it is refused) and layers re-read every 0.2 s."""
    return settings.model_copy(update={"city_extent": EXTENT, "areas_check_seconds": 0.2})


@pytest.fixture
async def geo(geo_settings):
    async with app_client(create_app(geo_settings)) as c:
        yield c


@pytest.fixture
async def geo_uow(geo_settings):
    async for units in _units(geo_settings.database_url):
        yield units
