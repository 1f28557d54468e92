"""service requests: drop indexes that others cover (every insert pays for each index)

(service_code) is the prefix of (service_code, status, requested_datetime), (department_code)
the prefix of (department_code, status), and (lat, long) is superseded by the grid-cell index.

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_service_requests_service_code", table_name="service_requests")
    op.drop_index("ix_service_requests_department_code", table_name="service_requests")
    op.drop_index("ix_service_requests_location", table_name="service_requests")


def downgrade() -> None:
    op.create_index("ix_service_requests_location", "service_requests", ["lat", "long"])
    op.create_index("ix_service_requests_department_code", "service_requests", ["department_code"])
    op.create_index("ix_service_requests_service_code", "service_requests", ["service_code"])
