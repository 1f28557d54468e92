from alembic import context

from citystat_common.migrate import run_env
from escalation.models import Base

run_env(context, Base.metadata)
