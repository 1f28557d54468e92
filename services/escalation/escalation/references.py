"""What a caller names must exist: departments, people, indicators. Refused with a 422 naming
the field, never stored as a made-up reference (a flag for department "NOPE" used to be routed
to the managing director's queue).

Departments and people are checked against escalation's local copy of the directory (fed by
``directory.changes``); one the copy does not hold yet is asked of the directory through the
client built in the lifespan, and kept (``add_if_absent``, as the consumer stores it too).
"Unknown" (the directory answered 404) is told apart from "unreachable".

Indicators: escalation learns of them only from the status events it consumes
(``indicators_seen``). A manual flag may name
- an ``indicator_id`` that escalation has seen (of the flag's department), or
- an ``indicator_code``: a seen one must be of the flag's department; an unseen one is accepted
  when it has the indicator-code form (letters, digits, ``_ . -``; a derived ``311.<DEPT>.x`` code
  names the flag's department), since an indicator that never changed status sent no event.
An unseen ``indicator_id`` is refused: nothing could tell it from a typo.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from citystat_common.db import utcnow
from citystat_common.errors import Invalid
from citystat_common.uow import UnitOfWork
from escalation.models import IndicatorSeen, PersonCopy, SeniorTeamCopy
from escalation.routing import CircuitOpen, DirectoryUnavailable

if TYPE_CHECKING:
    from escalation.deps import Deps

INDICATOR_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")  # the indicators service's form


async def _ask(deps: Deps, kind: str, key: str, *, what: str, field: str) -> dict[str, Any] | None:
    if deps.directory is None:
        raise Invalid(f"{what} {key} is not in escalation's copy of the directory (no directory configured)",
                      field=field)
    try:
        return await deps.directory.record(kind, key)
    except (DirectoryUnavailable, CircuitOpen) as exc:
        raise Invalid(f"{what} {key} is not in escalation's copy of the directory yet and the directory could "
                      f"not be asked ({exc}); retry shortly", field=field) from exc


async def known_department(uow: UnitOfWork, deps: Deps, *, code: str, field: str = "department_code") -> SeniorTeamCopy:
    row = await uow.session.get(SeniorTeamCopy, code)
    if row is not None:
        return row
    doc = await _ask(deps, "departments", code, what="department", field=field)
    if doc is None or doc.get("code") != code:
        raise Invalid(f"department {code} is not known to the directory", field=field)
    return await uow.add_if_absent(SeniorTeamCopy, {
        "department_code": code, "department_id": doc.get("id"), "department_name": doc.get("name"),
        "cluster_code": doc.get("cluster_code"), "active": bool(doc.get("active", True)), "roles": None,
        "updated_at": utcnow(),
    })


async def known_person(uow: UnitOfWork, deps: Deps, *, person_id: str, field: str = "assignee.person_id") -> PersonCopy:
    row = await uow.session.get(PersonCopy, person_id)
    if row is None:
        doc = await _ask(deps, "people", person_id, what="person", field=field)
        if doc is None or doc.get("id") != person_id:
            raise Invalid(f"person {person_id} is not known to the directory", field=field)
        row = await uow.add_if_absent(PersonCopy, {
            "person_id": person_id, "name": str(doc.get("name") or person_id)[:300], "title": doc.get("title"),
            "active": bool(doc.get("active", True)), "updated_at": utcnow(),
            "email": str(doc["email"]).lower() if doc.get("email") else None,
        })
    if not row.active:
        raise Invalid(f"person {person_id} ({row.name}) is no longer active in the directory", field=field)
    return row


async def remember_person(uow: UnitOfWork, person: dict[str, Any] | None, *, now: Any) -> None:
    """A holder named in a senior team is a known person (an upsert of their own wins over this)."""
    if person and person.get("person_id"):
        row = await uow.add_if_absent(PersonCopy, {
            "person_id": person["person_id"], "name": person["name"], "title": person.get("title"), "active": True,
            "updated_at": now, "email": str(person["email"]).lower() if person.get("email") else None,
        })
        if person.get("email") and not row.email:
            row.email = str(person["email"]).lower()


async def check_flag_indicator(
    uow: UnitOfWork, *, department_code: str, indicator_id: str | None, indicator_code: str | None
) -> tuple[str | None, str | None]:
    """The (indicator_id, indicator_code) a manual flag may carry; see the module's rule."""
    if indicator_id is not None:
        seen = await uow.session.get(IndicatorSeen, indicator_id)
        if seen is None:
            raise Invalid(f"escalation has seen no status event of indicator {indicator_id}; name an indicator "
                          "it knows, or give indicator_code only", field="indicator_id")
        if seen.department_code != department_code:
            raise Invalid(f"indicator {indicator_id} ({seen.indicator_code}) belongs to {seen.department_code}, "
                          f"not {department_code}", field="indicator_id")
        if indicator_code is not None and indicator_code != seen.indicator_code:
            raise Invalid(f"indicator {indicator_id} has code {seen.indicator_code}, not {indicator_code}",
                          field="indicator_code")
        return seen.indicator_id, seen.indicator_code
    if indicator_code is None:
        return None, None
    rows = (await uow.session.execute(
        sa.select(IndicatorSeen).where(IndicatorSeen.indicator_code == indicator_code)
    )).scalars().all()
    mine = [r for r in rows if r.department_code == department_code]
    if mine:
        return mine[0].indicator_id, indicator_code
    if rows:
        raise Invalid(f"indicator {indicator_code} belongs to {rows[0].department_code}, not {department_code}",
                      field="indicator_code")
    if not INDICATOR_CODE_RE.match(indicator_code):
        raise Invalid("indicator_code must be an indicator code: letters, digits and _ . - (at most 100)",
                      field="indicator_code")
    parts = indicator_code.split(".")
    if parts[0] == "311" and len(parts) >= 3 and parts[1].upper() != department_code:
        raise Invalid(f"indicator {indicator_code} is derived from {parts[1]}'s 311 requests, not {department_code}'s",
                      field="indicator_code")
    return None, indicator_code
