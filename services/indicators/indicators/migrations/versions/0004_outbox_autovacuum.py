"""outbox: autovacuum after a fixed number of changed rows (PostgreSQL), see citystat_common.migrate

Revision ID: 0004
Revises: 0003
"""
from alembic import op

from citystat_common.migrate import tune_outbox_autovacuum

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tune_outbox_autovacuum(op)


def downgrade() -> None:
    tune_outbox_autovacuum(op, reset=True)
