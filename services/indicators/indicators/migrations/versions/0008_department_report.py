"""the department report (issue 22): each department's statement of what it does (services, goals
and the indicators that answer them) and its narrative per report period, both with history

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

from citystat_common.db import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "department_statements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("department_code", sa.String(40), nullable=False),
        sa.Column("what_we_do", sa.Text, nullable=False),
        sa.Column("services", sa.JSON, nullable=False),
        sa.Column("written_by", sa.String(100), nullable=False),
        sa.Column("written_by_email", sa.String(320), nullable=True),
        sa.Column("written_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("valid_to", UTCDateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_department_statements_current", "department_statements", ["department_code", "valid_to"])
    op.create_table(
        "department_narratives",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("department_code", sa.String(40), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("written_by", sa.String(100), nullable=False),
        sa.Column("written_by_email", sa.String(320), nullable=True),
        sa.Column("written_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("superseded_at", UTCDateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_department_narratives_period", "department_narratives", ["department_code", "period", "id"])


def downgrade() -> None:
    op.drop_index("ix_department_narratives_period", table_name="department_narratives")
    op.drop_table("department_narratives")
    op.drop_index("ix_department_statements_current", table_name="department_statements")
    op.drop_table("department_statements")
