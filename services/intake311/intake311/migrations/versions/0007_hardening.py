"""hardening (issue 16): service-level attribute rules, per-service duplicate policy, the reporter's
feedback token (hashed) and the normalised address of reports without a position; the seed keeps
its promises (offensive graffiti within one business day, questions never linked as duplicates,
counts never negative)

Revision ID: 0007
Revises: 0006
"""
import re

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

GRAFFITI_RULES = [{"attribute": "OFFENSIVE", "value": "yes", "amount": 1.0, "unit": "business_days"}]
NO_DUPLICATES = {"enabled": False, "radius_m": None, "window_hours": None}
NON_NEGATIVE = {"DUMPING": ("ITEM_COUNT",), "ABANDONED_VEHICLE": ("DAYS_PARKED",)}

# intake311.duplicates.address_key as it is today, frozen (a migration must not follow code changes)
_SUFFIXES = {"street": "st", "avenue": "ave", "road": "rd", "boulevard": "blvd", "drive": "dr", "lane": "ln",
             "place": "pl", "court": "ct", "north": "n", "south": "s", "east": "e", "west": "w"}


def _address_key(text):
    words = re.sub(r"[^\w\s]", " ", text.casefold()).split()
    return " ".join(_SUFFIXES.get(w, w) for w in words)[:500] or None


def upgrade() -> None:
    op.add_column("services", sa.Column("sla_rules", sa.JSON(), nullable=True))
    op.add_column("services", sa.Column("duplicate_policy", sa.JSON(), nullable=True))
    op.add_column("service_requests", sa.Column("address_key", sa.String(500), nullable=True))
    op.add_column("service_requests", sa.Column("feedback_token_hash", sa.String(64), nullable=True))
    services = sa.table("services", sa.column("service_code", sa.String), sa.column("sla_rules", sa.JSON),
                        sa.column("duplicate_policy", sa.JSON), sa.column("attributes", sa.JSON))
    bind = op.get_bind()
    bind.execute(services.update().where(services.c.service_code == "GRAFFITI").values(sla_rules=GRAFFITI_RULES))
    bind.execute(services.update().where(services.c.service_code == "INFORMATION").values(duplicate_policy=NO_DUPLICATES))
    for code, attrs in NON_NEGATIVE.items():
        row = bind.execute(sa.select(services.c.attributes).where(services.c.service_code == code)).first()
        if row is None or not row.attributes:
            continue
        changed = [{**a, "minimum": 0} if a.get("code") in attrs and "minimum" not in a else a for a in row.attributes]
        bind.execute(services.update().where(services.c.service_code == code).values(attributes=changed))
    # Open reports without a position get their address key, so new reports can be linked to them.
    requests = sa.table("service_requests", sa.column("id", sa.BigInteger), sa.column("address_id", sa.String),
                        sa.column("address_string", sa.String), sa.column("address_key", sa.String),
                        sa.column("lat", sa.Float), sa.column("status", sa.String))
    rows = bind.execute(sa.select(requests.c.id, requests.c.address_id, requests.c.address_string).where(
        requests.c.lat.is_(None), requests.c.status == "open")).all()
    for rid, address_id, address_string in rows:
        key = _address_key(address_id or address_string or "")
        if key:
            bind.execute(requests.update().where(requests.c.id == rid).values(address_key=key))


def downgrade() -> None:
    with op.batch_alter_table("service_requests") as batch_op:
        batch_op.drop_column("feedback_token_hash")
        batch_op.drop_column("address_key")
    services = sa.table("services", sa.column("service_code", sa.String), sa.column("attributes", sa.JSON))
    bind = op.get_bind()
    for code, attrs in NON_NEGATIVE.items():
        row = bind.execute(sa.select(services.c.attributes).where(services.c.service_code == code)).first()
        if row is not None and row.attributes:
            restored = [{k: v for k, v in a.items() if not (k == "minimum" and a.get("code") in attrs)}
                        for a in row.attributes]
            bind.execute(services.update().where(services.c.service_code == code).values(attributes=restored))
    with op.batch_alter_table("services") as batch_op:
        batch_op.drop_column("duplicate_policy")
        batch_op.drop_column("sla_rules")
