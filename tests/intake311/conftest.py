import pytest

from citystat_common.testing import TEST_KEY_ENTRIES, app_client
from intake311.config import Settings
from intake311.main import create_app

# Nothing listens on port 9: the broker and the directory are down unless a test brings its own.
NOWHERE = "127.0.0.1:9"


@pytest.fixture
def settings(db_factory):
    return Settings(
        database_url=db_factory("intake311"), api_keys=TEST_KEY_ENTRIES, kafka_bootstrap=NOWHERE,
        directory_url=f"http://{NOWHERE}", directory_timeout=1.0,
    )


@pytest.fixture
async def client(settings):
    async with app_client(create_app(settings)) as c:
        yield c


@pytest.fixture
async def uow_factory(settings):
    """Units of work on the test database, for calling the domain functions directly."""
    from citystat_common.db import create_engine, session_factory
    from citystat_common.uow import UnitOfWork
    from intake311.models import PLUMBING

    engine = create_engine(settings.database_url)
    sessions = session_factory(engine)
    yield lambda: UnitOfWork(sessions, PLUMBING)
    await engine.dispose()
