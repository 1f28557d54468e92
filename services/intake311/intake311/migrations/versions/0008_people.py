"""people (issue 17): who made each change, a person (name, email, how they signed in) or a machine
key, on status notes, on requests (who filed it) and on catalog rows (the last change). Old rows keep
what they have: their author's name, with no kind.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_WHO = (("kind", sa.String(10)), ("email", sa.String(320)), ("via", sa.String(10)))


def upgrade() -> None:
    for name, kind in _WHO:
        op.add_column("status_notes", sa.Column(f"author_{name}", kind, nullable=True))
        op.add_column("service_requests", sa.Column(f"created_by_{name}", kind, nullable=True))
    op.add_column("services", sa.Column("changed_by", sa.JSON(), nullable=True))
    op.add_column("calendars", sa.Column("changed_by", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("calendars", "changed_by")
    op.drop_column("services", "changed_by")
    for name, _ in _WHO:
        with op.batch_alter_table("service_requests") as batch:
            batch.drop_column(f"created_by_{name}")
        with op.batch_alter_table("status_notes") as batch:
            batch.drop_column(f"author_{name}")
