"""observations.updated_at defaults to the time of the writing transaction

A bulk ingest COPYs its new rows, and encoding one timezone-aware timestamp per row was 60% of
asyncpg's encoding work for the 16 columns (docs/performance.md). The value is the same for every
row of a call (when the call wrote them), so the COPY leaves the column out and the database
fills it in: PostgreSQL's ``now()`` is the transaction's start. Every other write still sets it.
PostgreSQL only: SQLite has no COPY, and rebuilding its table for an unused default is not worth it.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("observations", "updated_at", server_default=sa.text("now()"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("observations", "updated_at", server_default=None)
