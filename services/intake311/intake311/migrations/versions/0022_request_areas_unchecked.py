"""request_areas without its two foreign keys (issue 20's history import speed).

Why: every row written to request_areas had PostgreSQL check both keys, locking the request and
the layer version row ``FOR KEY SHARE``. A request has one row per layer, so the history import of
a city with 4 layers spent most of its database time there: a COPY of 120,000 request_areas rows
took 3.4 s with the keys and 1.7 s without them (docs/performance.md, "311 history import with
boundary layers").

What still holds them, in the code: a request's areas are written only in the transaction that
writes the request (intake, the history import) or for a request just read (the re-tag), with a
version id of a version read from the database; neither requests nor layer versions are ever
deleted (no code path deletes either; a new boundary is a new version). Every query reaches
request_areas from service_requests (a join or an IN), so a stray row would not be seen. The
primary key (request_id, layer) and the (layer, code, request_id) index stay. The same choice as
``observations.indicator_id`` in the indicators service, which has no foreign key either.

Revision ID: 0022
Revises: 0021
"""
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_KEYS = (("fk_request_areas_request_id_service_requests", "service_requests", "request_id"),
         ("fk_request_areas_version_id_area_layer_versions", "area_layer_versions", "version_id"))


def upgrade() -> None:
    with op.batch_alter_table("request_areas") as batch_op:
        for name, _, _ in _KEYS:
            batch_op.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("request_areas") as batch_op:
        for name, table, column in _KEYS:
            batch_op.create_foreign_key(name, table, [column], ["id"])
