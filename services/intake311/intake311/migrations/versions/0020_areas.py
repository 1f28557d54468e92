"""geography (issue 21): boundary layers and their versions, the areas of each request, the city's
address points. Geometry is GeoJSON text (no PostGIS): shapely does the point-in-polygon in the api.

Revision ID: 0020
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

import citystat_common.db

revision = "0020"
down_revision = "0010"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "area_layers",
        sa.Column("layer", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", citystat_common.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("layer", name=op.f("pk_area_layers")),
    )
    op.create_table(
        "area_layer_versions",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("layer", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("effective_from", citystat_common.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("code_property", sa.String(100), nullable=False),
        sa.Column("name_property", sa.String(100), nullable=False),
        sa.Column("source", sa.String(300), nullable=True),
        sa.Column("area_count", sa.Integer(), nullable=False),
        sa.Column("loaded_at", citystat_common.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("loaded_by", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["layer"], ["area_layers.layer"], name=op.f("fk_area_layer_versions_layer_area_layers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_area_layer_versions")),
        sa.UniqueConstraint("layer", "version", name=op.f("uq_area_layer_versions_layer")),
    )
    op.create_table(
        "areas",
        sa.Column("version_id", BigId, nullable=False),
        sa.Column("code", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("geometry", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["area_layer_versions.id"], name=op.f("fk_areas_version_id_area_layer_versions")),
        sa.PrimaryKeyConstraint("version_id", "code", name=op.f("pk_areas")),
    )
    op.create_table(
        "request_areas",
        sa.Column("request_id", BigId, nullable=False),
        sa.Column("layer", sa.String(40), nullable=False),
        sa.Column("code", sa.String(100), nullable=True),
        sa.Column("version_id", BigId, nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["service_requests.id"], name=op.f("fk_request_areas_request_id_service_requests")),
        sa.ForeignKeyConstraint(["version_id"], ["area_layer_versions.id"], name=op.f("fk_request_areas_version_id_area_layer_versions")),
        sa.PrimaryKeyConstraint("request_id", "layer", name=op.f("pk_request_areas")),
    )
    op.create_index("ix_request_areas_layer_code", "request_areas", ["layer", "code", "request_id"])
    op.create_table(
        "address_points",
        sa.Column("address_id", sa.String(100), nullable=False),
        sa.Column("address", sa.String(500), nullable=False),
        sa.Column("address_key", sa.String(500), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("long", sa.Float(), nullable=False),
        sa.Column("updated_at", citystat_common.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("address_id", name=op.f("pk_address_points")),
    )
    op.create_index(op.f("ix_address_points_address_key"), "address_points", ["address_key"])


def downgrade() -> None:
    op.drop_index(op.f("ix_address_points_address_key"), table_name="address_points")
    op.drop_table("address_points")
    op.drop_index("ix_request_areas_layer_code", table_name="request_areas")
    op.drop_table("request_areas")
    op.drop_table("areas")
    op.drop_table("area_layer_versions")
    op.drop_table("area_layers")
