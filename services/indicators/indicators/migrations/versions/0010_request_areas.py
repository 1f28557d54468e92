"""Stat by area (issue 21): each request's area per boundary layer, from the 311 request events

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
    op.create_table(
        "request_areas",
        sa.Column("service_request_id", sa.String(64), primary_key=True),
        sa.Column("layer", sa.String(40), primary_key=True),
        sa.Column("area_code", sa.String(100), nullable=False),
    )
    op.create_index("ix_request_areas_layer_code", "request_areas", ["layer", "area_code", "service_request_id"])


def downgrade() -> None:
    op.drop_index("ix_request_areas_layer_code", table_name="request_areas")
    op.drop_table("request_areas")
