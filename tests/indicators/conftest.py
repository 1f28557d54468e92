import pytest

from citystat_common.events import DepartmentUpserted
from citystat_common.testing import TEST_KEY_ENTRIES, app_client
from indicators.config import Settings
from indicators.main import create_app
from indicators.service import upsert_department

DEMO_DEPTS = [
    ("STREETS", "Streets Department", "OPERATIONS", "Operations & Infrastructure"),
    ("WATER", "Water Department", "OPERATIONS", "Operations & Infrastructure"),
    ("POLICE", "Police Department", "SAFETY", "Public Safety"),
    ("HEALTH", "Department of Public Health", "HEALTH_HS", "Health & Human Services"),
]


@pytest.fixture
def indicators_settings(db_factory, broker):
    return Settings(
        database_url=db_factory("indicators"), api_keys=TEST_KEY_ENTRIES, kafka_bootstrap=broker.bootstrap,
        directory_url="http://127.0.0.1:9",  # nothing listens: the local copy must answer
        directory_timeout=0.5,
    )


async def preload_departments(app, rows=DEMO_DEPTS):
    """What directory.department.upserted events would have stored: call the handler's service function."""
    async with app.state.ctx.uow() as uow:
        for code, name, ccode, cname in rows:
            await upsert_department(uow, DepartmentUpserted(
                department_id=f"id-{code}", code=code, name=name, cluster_code=ccode, cluster_name=cname))
        await uow.commit()


@pytest.fixture
async def app(indicators_settings):
    return create_app(indicators_settings)


@pytest.fixture
async def client(app):
    async with app_client(app) as c:
        await preload_departments(app)
        yield c
