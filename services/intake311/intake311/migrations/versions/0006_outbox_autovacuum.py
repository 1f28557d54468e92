"""outbox: autovacuum after a fixed number of changed rows (PostgreSQL), see citystat_common.migrate

Revision ID: 0006
Revises: 0005
"""
from alembic import op

from citystat_common.migrate import tune_outbox_autovacuum

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tune_outbox_autovacuum(op)


def downgrade() -> None:
    tune_outbox_autovacuum(op, reset=True)
