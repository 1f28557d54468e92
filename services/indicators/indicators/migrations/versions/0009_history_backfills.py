"""history backfills (issue 20): one row per imported 311 batch, where its backfill stands

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

from citystat_common.db import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "history_backfills",
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("file_name", sa.String(500), nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("first_requested", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_requested", UTCDateTime(timezone=True), nullable=False),
        sa.Column("department_codes", sa.JSON, nullable=False),
        sa.Column("service_codes", sa.JSON, nullable=False),
        sa.Column("after", sa.BigInteger, nullable=False),
        sa.Column("facts", sa.Integer, nullable=False),
        sa.Column("pages_done", sa.Boolean, nullable=False),
        sa.Column("lease_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("received_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_history_backfills")),
    )
    op.create_index(op.f("ix_history_backfills_finished_at"), "history_backfills", ["finished_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_history_backfills_finished_at"), table_name="history_backfills")
    op.drop_table("history_backfills")
