"""history import (issue 20): a request keeps its previous system's number (unique, looked up by
GET /requests?legacy_id=) and the import batch that brought it; import_batches records each import
(file, mapping, who, when, counts, period) for the indicators' backfill.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

from citystat_common.db import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("service_requests", sa.Column("legacy_id", sa.String(100), nullable=True))
    op.add_column("service_requests", sa.Column("import_batch_id", sa.String(36), nullable=True))
    # NULLs are distinct in a unique index on both databases: requests filed here have none
    op.create_index("ix_service_requests_legacy_id", "service_requests", ["legacy_id"], unique=True)
    op.create_index("ix_service_requests_import_batch", "service_requests", ["import_batch_id", "id"])
    op.create_table(
        "import_batches",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("file_name", sa.String(500), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("mapping_sha256", sa.String(64), nullable=False),
        sa.Column("imported_by", sa.JSON(), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("rows_total", sa.Integer(), nullable=False),
        sa.Column("rows_imported", sa.Integer(), nullable=False),
        sa.Column("rows_present", sa.Integer(), nullable=False),
        sa.Column("rows_refused", sa.Integer(), nullable=False),
        sa.Column("first_requested", UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_requested", UTCDateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("file_sha256", "mapping_sha256", name="uq_import_batches_file_mapping"),
    )


def downgrade() -> None:
    op.drop_table("import_batches")
    op.drop_index("ix_service_requests_import_batch", table_name="service_requests")
    op.drop_index("ix_service_requests_legacy_id", table_name="service_requests")
    with op.batch_alter_table("service_requests") as batch:
        batch.drop_column("import_batch_id")
        batch.drop_column("legacy_id")
