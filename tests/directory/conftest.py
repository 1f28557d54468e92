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


@pytest.fixture
def outbox(directory_settings):
    """outbox() -> the events written so far, oldest first, as (type, data) pairs."""
    import orjson
    import sqlalchemy as sa

    from citystat_common.db import create_engine
    from directory.models import PLUMBING

    async def read() -> list[tuple[str, dict]]:
        engine = create_engine(directory_settings.database_url)
        try:
            async with engine.connect() as conn:
                rows = (await conn.execute(sa.select(PLUMBING.outbox.c.payload).order_by(PLUMBING.outbox.c.id))).scalars()
                docs = [orjson.loads(p) for p in rows]
        finally:
            await engine.dispose()
        return [(d["type"], d["data"]) for d in docs]

    return read


@pytest.fixture
async def uow_factory(directory_settings):
    """uow_factory() -> a UnitOfWork on the test database (for service and scheduler calls)."""
    from citystat_common.db import create_engine, session_factory
    from citystat_common.uow import UnitOfWork
    from directory.models import PLUMBING

    engine = create_engine(directory_settings.database_url)
    sessions = session_factory(engine)
    yield lambda: UnitOfWork(sessions, PLUMBING)
    await engine.dispose()
