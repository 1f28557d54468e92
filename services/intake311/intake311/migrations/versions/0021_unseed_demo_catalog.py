"""an empty city starts with no catalog (issue 20): remove the demo catalog migration 0002 seeded,
where the city never took it into use

0002 seeded 19 services and 8 departments of the demo city into every database. They are demo
data, not the city's: a new database must start empty, and the demo now loads them through the
catalog import (intake311.demo_catalog, ``make run``). What a city's DBA expects of an upgrade is
that nothing the city uses disappears, so this removes the seed only where it is untouched:

- The 19 services, all or none: only when no request names any of them and none was changed since
  0002 (``changed_by`` empty, ``updated_at`` still the seed's). A city that has taken the seeded
  catalog into use (one request, one edit) keeps all of it, so its Open311 clients do not see part
  of a catalog vanish; it retires what it does not offer with DELETE /admin/services/{code}.
  A new database, where 0002 just wrote them, ends with none.
- The 8 departments, each on its own: only while the directory never confirmed it (no
  ``department_id``, the seed's name) and no service, department rule, request or feedback names it.
  A department the directory knows comes back from it with its ``directory.changes`` event.
- The business calendar CITY stays: it is the city's working hours, not a catalog; every service
  names a calendar, and ``PUT /admin/calendars/CITY`` sets the city's own.

Downgrade does nothing: the demo catalog is demo data (``make run`` or ``intake311-worker
import-catalog`` loads it), and a database that kept it still has it.

Revision ID: 0021
Revises: 0020
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import citystat_common.db

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

SEEDED_AT = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # 0002's NOW, frozen here as there
SEEDED_SERVICES = (
    "POTHOLE", "STREETLIGHT", "DUMPING", "MISSED_TRASH", "ABANDONED_VEHICLE", "GRAFFITI", "WATER_MAIN", "HYDRANT",
    "TREE_DOWN", "TREE_PLANTING", "NOISE", "RODENTS", "SIDEWALK", "DEAD_ANIMAL", "VACANT_LOT", "NO_PERMIT",
    "PARK_MAINTENANCE", "FOOD_SAFETY", "INFORMATION",
)
SEEDED_DEPARTMENTS = {
    "STREETS": "Streets Department", "WATER": "Water Department", "SANITATION": "Sanitation Department",
    "LI": "Licenses & Inspections", "POLICE": "Police Department", "PARKS": "Parks & Recreation",
    "HEALTH": "Department of Public Health", "CONTACT311": "311 Contact Centre",
}


def upgrade() -> None:
    bind = op.get_bind()
    services = sa.table("services", sa.column("service_code", sa.String), sa.column("department_code", sa.String),
                        sa.column("department_rules", sa.JSON), sa.column("changed_by", sa.JSON),
                        sa.column("updated_at", citystat_common.db.UTCDateTime()))
    requests = sa.table("service_requests", sa.column("service_code", sa.String), sa.column("department_code", sa.String))
    feedback = sa.table("feedback", sa.column("department_code", sa.String))
    departments = sa.table("departments", sa.column("code", sa.String), sa.column("name", sa.String),
                           sa.column("department_id", sa.String))

    seeded = bind.execute(sa.select(services.c.service_code, services.c.changed_by, services.c.updated_at)
                          .where(services.c.service_code.in_(SEEDED_SERVICES))).all()
    edited = [r.service_code for r in seeded if r.changed_by is not None or r.updated_at != SEEDED_AT]
    used = bind.execute(sa.select(requests.c.service_code).where(
        requests.c.service_code.in_(SEEDED_SERVICES)).limit(1)).first()
    if seeded and not edited and used is None:
        bind.execute(services.delete().where(services.c.service_code.in_([r.service_code for r in seeded])))

    named: set[str] = set()
    for dept, rules in bind.execute(sa.select(services.c.department_code, services.c.department_rules)):
        named.add(dept)
        named.update(r.get("department_code") for r in rules or [])
    candidates = [code for code in SEEDED_DEPARTMENTS if code not in named]
    if not candidates:
        return
    named.update(c for (c,) in bind.execute(sa.select(requests.c.department_code).where(
        requests.c.department_code.in_(candidates)).distinct()))
    named.update(c for (c,) in bind.execute(sa.select(feedback.c.department_code).where(
        feedback.c.department_code.in_(candidates)).distinct()))
    rows = bind.execute(sa.select(departments.c.code, departments.c.name, departments.c.department_id)
                        .where(departments.c.code.in_(candidates))).all()
    unconfirmed = [r.code for r in rows
                   if r.code not in named and r.department_id is None and r.name == SEEDED_DEPARTMENTS[r.code]]
    if unconfirmed:
        bind.execute(departments.delete().where(departments.c.code.in_(unconfirmed)))


def downgrade() -> None:
    pass
