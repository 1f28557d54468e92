"""People in the loop: the author of every change (timeline, actions, mutes, projects), email and
notification mode in the copy of the directory, mail notifications (recipient email, copies, one
key per event and recipient, digest time), action owners and the warnings already sent.
Old rows keep what they had: their author is NULL, their actor label stays.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

import citystat_common.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

AUTHORED = ("timeline", "actions", "mutes", "projects")


def upgrade() -> None:
    for table in AUTHORED:
        with op.batch_alter_table(table) as b:
            b.add_column(sa.Column("author", sa.JSON(), nullable=True))
    with op.batch_alter_table("people") as b:
        b.add_column(sa.Column("email", sa.String(length=320), nullable=True))
        b.add_column(sa.Column("notify", sa.String(length=20), nullable=False, server_default="immediate"))
        b.create_index(b.f("ix_people_email"), ["email"], unique=False)
    with op.batch_alter_table("notifications") as b:
        b.add_column(sa.Column("recipient_email", sa.String(length=320), nullable=True))
        b.add_column(sa.Column("cc", sa.JSON(), nullable=True))
        b.add_column(sa.Column("key", sa.String(length=200), nullable=True))
        b.add_column(sa.Column("digest_at", citystat_common.db.UTCDateTime(timezone=True), nullable=True))
        b.create_unique_constraint(b.f("uq_notifications_key"), ["key"])
    with op.batch_alter_table("actions") as b:
        b.add_column(sa.Column("owner_person_id", sa.String(length=36), nullable=True))
        b.add_column(sa.Column("due_notified_for", sa.Date(), nullable=True))
        b.create_index(b.f("ix_actions_owner_person_id"), ["owner_person_id"], unique=False)
    with op.batch_alter_table("tickets") as b:
        b.add_column(sa.Column("ack_warned_for", citystat_common.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as b:
        b.drop_column("ack_warned_for")
    with op.batch_alter_table("actions") as b:
        b.drop_index(b.f("ix_actions_owner_person_id"))
        b.drop_column("due_notified_for")
        b.drop_column("owner_person_id")
    with op.batch_alter_table("notifications") as b:
        b.drop_constraint(b.f("uq_notifications_key"), type_="unique")
        b.drop_column("digest_at")
        b.drop_column("key")
        b.drop_column("cc")
        b.drop_column("recipient_email")
    with op.batch_alter_table("people") as b:
        b.drop_index(b.f("ix_people_email"))
        b.drop_column("notify")
        b.drop_column("email")
    for table in AUTHORED:
        with op.batch_alter_table(table) as b:
            b.drop_column("author")
