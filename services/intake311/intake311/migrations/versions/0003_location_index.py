"""index service requests by location (area searches, duplicate detection)

Revision ID: 0003
Revises: 0002
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_service_requests_location", "service_requests", ["lat", "long"])


def downgrade() -> None:
    op.drop_index("ix_service_requests_location", table_name="service_requests")
