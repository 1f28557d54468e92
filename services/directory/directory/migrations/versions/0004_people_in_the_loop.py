"""People in the loop: where a person works (people.department_id) and how escalation reaches them
(people.notify); who made each change (audit_log.actor_*, role_assignments.created_by_*), with the
label widened for a person's full name. Old rows keep their label and have no kind, email or way in.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("department_id", sa.String(36), nullable=True))
        batch_op.add_column(sa.Column("notify", sa.String(10), server_default="immediate", nullable=False))
        batch_op.create_foreign_key("fk_people_department_id_departments", "departments", ["department_id"], ["id"])
        batch_op.create_index("ix_people_department_id", ["department_id"], unique=False)
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.alter_column("actor", existing_type=sa.String(100), type_=sa.String(320), existing_nullable=False)
        batch_op.add_column(sa.Column("actor_kind", sa.String(10), nullable=True))
        batch_op.add_column(sa.Column("actor_email", sa.String(320), nullable=True))
        batch_op.add_column(sa.Column("actor_via", sa.String(10), nullable=True))
        batch_op.create_index("ix_audit_log_actor_email", ["actor_email"], unique=False)
    with op.batch_alter_table("role_assignments", schema=None) as batch_op:
        batch_op.alter_column("created_by", existing_type=sa.String(100), type_=sa.String(320), existing_nullable=False)
        batch_op.add_column(sa.Column("created_by_kind", sa.String(10), nullable=True))
        batch_op.add_column(sa.Column("created_by_email", sa.String(320), nullable=True))
        batch_op.add_column(sa.Column("created_by_via", sa.String(10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("role_assignments", schema=None) as batch_op:
        batch_op.drop_column("created_by_via")
        batch_op.drop_column("created_by_email")
        batch_op.drop_column("created_by_kind")
        batch_op.alter_column("created_by", existing_type=sa.String(320), type_=sa.String(100), existing_nullable=False)
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_actor_email")
        batch_op.drop_column("actor_via")
        batch_op.drop_column("actor_email")
        batch_op.drop_column("actor_kind")
        batch_op.alter_column("actor", existing_type=sa.String(320), type_=sa.String(100), existing_nullable=False)
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_index("ix_people_department_id")
        batch_op.drop_constraint("fk_people_department_id_departments", type_="foreignkey")
        batch_op.drop_column("notify")
        batch_op.drop_column("department_id")
