"""people and indicators_seen (the local copies that references are checked against);
ticket_episodes (every breach episode a ticket answered for), filled from the tickets

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

import citystat_common.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "people",
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", citystat_common.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_people")),
    )
    op.create_table(
        "indicators_seen",
        sa.Column("indicator_id", sa.String(length=100), nullable=False),
        sa.Column("indicator_code", sa.String(length=100), nullable=False),
        sa.Column("indicator_name", sa.String(length=300), nullable=False),
        sa.Column("department_code", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("updated_at", citystat_common.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("indicator_id", name=op.f("pk_indicators_seen")),
    )
    op.create_index(op.f("ix_indicators_seen_indicator_code"), "indicators_seen", ["indicator_code"], unique=False)
    op.create_table(
        "ticket_episodes",
        sa.Column("ticket_id", sa.String(length=36), nullable=False),
        sa.Column("episode_id", sa.String(length=100), nullable=False),
        sa.Column("recovered_at", citystat_common.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_episodes_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("ticket_id", "episode_id", name=op.f("pk_ticket_episodes")),
    )
    op.create_index(op.f("ix_ticket_episodes_episode_id"), "ticket_episodes", ["episode_id"], unique=False)
    op.execute("INSERT INTO ticket_episodes (ticket_id, episode_id, recovered_at) "
               "SELECT id, episode_id, recovered_at FROM tickets WHERE episode_id IS NOT NULL")


def downgrade() -> None:
    op.drop_index(op.f("ix_ticket_episodes_episode_id"), table_name="ticket_episodes")
    op.drop_table("ticket_episodes")
    op.drop_index(op.f("ix_indicators_seen_indicator_code"), table_name="indicators_seen")
    op.drop_table("indicators_seen")
    op.drop_table("people")
