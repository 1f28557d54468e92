"""a service with more than one owning department (issue 20): rules that give requests with an
attribute value to another department ("Encampment": by location type); existing services have none.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("services", sa.Column("department_rules", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.drop_column("department_rules")
