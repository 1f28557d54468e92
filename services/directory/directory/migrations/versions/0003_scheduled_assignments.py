"""role_assignments.pending_effect: an assignment recorded ahead of its start, whose
senior_team.changed event the worker publishes when the start comes (directory.schedule)

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("role_assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_effect", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index("ix_role_assignments_pending", ["pending_effect", "starts_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("role_assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_role_assignments_pending")
        batch_op.drop_column("pending_effect")
