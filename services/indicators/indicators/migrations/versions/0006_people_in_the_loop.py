"""who judged: the email and channel of the person behind an override and a status change

``created_by`` / ``actor`` now hold the person's name (or ``key <name>`` for a machine key);
these columns keep the email (the directory's person) and how they came (key, bearer, session).

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("overrides") as batch:
        batch.add_column(sa.Column("created_by_email", sa.String(320), nullable=True))
        batch.add_column(sa.Column("cleared_by_email", sa.String(320), nullable=True))
    with op.batch_alter_table("status_history") as batch:
        batch.add_column(sa.Column("actor_email", sa.String(320), nullable=True))
        batch.add_column(sa.Column("actor_via", sa.String(10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("status_history") as batch:
        batch.drop_column("actor_via")
        batch.drop_column("actor_email")
    with op.batch_alter_table("overrides") as batch:
        batch.drop_column("cleared_by_email")
        batch.drop_column("created_by_email")
