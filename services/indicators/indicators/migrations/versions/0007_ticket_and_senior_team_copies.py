"""who is on it: local copies of escalation's tickets and of the senior teams' deputy mayors

``ticket_copies`` is fed by ``escalation.ticket.updated`` (a red or yellow tile names the open
ticket's holder, level and last action); ``senior_teams`` by ``directory.senior_team.changed``
(the cluster view names its deputy mayor). Both are copies: the broker's history refills them.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

import citystat_common.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_copies",
        sa.Column("ticket_id", sa.String(length=36), nullable=False),
        sa.Column("indicator_id", sa.String(length=100), nullable=False),
        sa.Column("department_code", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("level_role", sa.String(length=40), nullable=True),
        sa.Column("holder_name", sa.String(length=300), nullable=True),
        sa.Column("holder_email", sa.String(length=320), nullable=True),
        sa.Column("holder_role", sa.String(length=40), nullable=True),
        sa.Column("last_action", sa.Text(), nullable=True),
        sa.Column("last_action_at", citystat_common.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("opened_at", citystat_common.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("changed_at", citystat_common.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", citystat_common.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_ticket_copies")),
    )
    op.create_index("ix_ticket_copies_indicator_status", "ticket_copies", ["indicator_id", "status"])
    op.create_table(
        "senior_teams",
        sa.Column("department_code", sa.String(length=40), nullable=False),
        sa.Column("cluster_code", sa.String(length=40), nullable=True),
        sa.Column("deputy_mayor_id", sa.String(length=36), nullable=True),
        sa.Column("deputy_mayor_name", sa.String(length=300), nullable=True),
        sa.Column("deputy_mayor_title", sa.String(length=300), nullable=True),
        sa.Column("event_time", citystat_common.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", citystat_common.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("department_code", name=op.f("pk_senior_teams")),
    )
    op.create_index(op.f("ix_senior_teams_cluster_code"), "senior_teams", ["cluster_code"])


def downgrade() -> None:
    op.drop_index(op.f("ix_senior_teams_cluster_code"), table_name="senior_teams")
    op.drop_table("senior_teams")
    op.drop_index("ix_ticket_copies_indicator_status", table_name="ticket_copies")
    op.drop_table("ticket_copies")
