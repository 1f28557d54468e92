"""service requests: grid cell column (backfilled) and its index, for area searches

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# intake311.models.grid_cell in SQL, frozen here (a migration must not follow later model changes):
# floor((clamp(coordinate) + bound) / 0.005), row * 200000 + column. The clamped sum is never
# negative, so SQLite's CAST (truncation) is the floor. Same double arithmetic as Python's.
_PG_INDEX = "floor((LEAST({b}::float8, GREATEST(-{b}::float8, {col})) + {b}::float8) / 0.005::float8)::bigint"
_SQLITE_INDEX = "CAST((min({b}.0, max(-{b}.0, {col})) + {b}.0) / 0.005 AS INTEGER)"


def cell_sql(dialect: str, lat: str = "lat", long: str = "long") -> str:
    index = _PG_INDEX if dialect == "postgresql" else _SQLITE_INDEX
    return (f"CASE WHEN {lat} IS NULL OR {long} IS NULL THEN NULL ELSE "
            f"{index.format(b=90, col=lat)} * 200000 + {index.format(b=180, col=long)} END")


def upgrade() -> None:
    op.add_column("service_requests", sa.Column("cell", sa.BigInteger(), nullable=True))
    dialect = op.get_bind().dialect.name
    op.execute(f"UPDATE service_requests SET cell = {cell_sql(dialect)} WHERE lat IS NOT NULL AND long IS NOT NULL")
    op.create_index("ix_service_requests_cell", "service_requests",
                    ["cell", "requested_datetime", "id", "status", "pending", "lat", "long"])


def downgrade() -> None:
    op.drop_index("ix_service_requests_cell", table_name="service_requests")
    with op.batch_alter_table("service_requests") as batch_op:
        batch_op.drop_column("cell")
