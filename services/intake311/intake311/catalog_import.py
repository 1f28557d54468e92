"""Importing a city's service catalog (issue 20): the services a catalog file describes
(intake311.catalog_file), checked against the database and the directory, then stored.

- All or nothing: every service is checked first (owner and rule departments known and active,
  calendar known, service levels the calendar can meet, rules on list attributes) and every problem
  is reported in one pass; nothing is stored while there is one.
- Idempotent: a service whose stored columns already are what the file says is left untouched (its
  ``updated_at`` and ``changed_by`` too), so importing the same file again changes nothing.
- A name on every change: each created or changed service records the actor, as the catalog admin
  API does. Services the file does not name are left as they are (retire one with DELETE
  /admin/services/{code} or ``active = no`` in the file). The catalog admin API emits no events
  (the catalog is read where it is stored), and neither does the import.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from citystat_common.auth import Actor
from citystat_common.db import utcnow
from citystat_common.directory import DirectoryUnreachable
from citystat_common.errors import Invalid
from citystat_common.logging import get_logger
from citystat_common.uow import UnitOfWork
from intake311.catalog_admin import check_department_rules, check_service_levels, stored_fields
from intake311.catalog_file import CatalogEntry, Error
from intake311.deps import Deps
from intake311.models import Calendar, Department, Service

log = get_logger(__name__)

# (department code, the file's column) -> the department, or Invalid saying why not
Resolver = Callable[[str, str], Awaitable[Department]]


@dataclass
class CatalogReport:
    """``rows`` read; ``services`` the file describes = created + updated + unchanged when ok."""

    ok: bool
    rows: int
    dry_run: bool = False
    services: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[Error] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)  # {service_code, change, fields}

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def lines(self) -> list[str]:
        out = [f"row {e['row']}, {e['field']}: {e['message']}" for e in self.errors]
        out += [f"{c['change']:<9} {c['service_code']}" + (f" ({', '.join(c['fields'])})" if c["fields"] else "")
                for c in self.changes if c["change"] != "unchanged"]
        if not self.ok:
            out.append(f"{len(self.errors)} problems; nothing imported ({self.rows} rows read)")
        else:
            verb = "would be" if self.dry_run else "were"
            out.append(f"{self.services} services in {self.rows} rows: {self.created} {verb} created, "
                       f"{self.updated} {verb} changed, {self.unchanged} unchanged")
        return out


@dataclass
class _Plan:
    entry: CatalogEntry
    fields: dict[str, Any]
    department: Department
    calendar: Calendar
    existing: Service | None
    changed: list[str]


def _column(refusal: Invalid) -> str:
    """The file's column a domain refusal is about."""
    text = " ".join(str(e.get("field") or "") for e in refusal.errors)
    if "department_rules" in text:
        return "department_rules"
    if "rules" in text:
        return "service_level_rules"
    return "service_level_amount"


def _same(stored: Any, wanted: Any) -> bool:
    # rows written before a list column existed hold NULL where the import writes []
    if isinstance(wanted, list) and stored is None:
        return not wanted
    return bool(stored == wanted)


async def _check(uow: UnitOfWork, deps: Deps, entry: CatalogEntry, resolve: Resolver) -> tuple[_Plan | None, list[Error]]:
    data, row = entry.data, entry.rows[0]
    errors: list[Error] = []
    department = None
    try:
        department = await resolve(data.department_code, "department_code")
    except Invalid as exc:
        errors.append({"row": row, "field": "department_code", "message": exc.detail})
    rule_departments: dict[str, Department] = {}
    for rule in data.department_rules:
        try:
            rule_departments[rule.department_code] = await resolve(rule.department_code, "department_rules")
        except Invalid as exc:
            errors.append({"row": row, "field": "department_rules", "message": exc.detail})
    calendar = await uow.session.get(Calendar, data.service_level.calendar.upper())
    if calendar is None:
        errors.append({"row": row, "field": "calendar",
                       "message": f"no business calendar with code {data.service_level.calendar!r} (PUT /admin/calendars/{{code}})"})
    if errors or department is None or calendar is None:
        return None, errors
    fields = stored_fields(data, department=department, calendar=calendar, rule_departments=rule_departments)
    candidate = Service(**fields, active=entry.active)  # never added: what the service would be, to check
    try:
        if entry.active:  # a retired service is never refused (as DELETE /admin/services)
            check_service_levels(candidate, calendar, deps.timezone)
        await check_department_rules(uow, deps, service=candidate, rules_changed=True)  # areas too (issue 21)
    except Invalid as exc:
        return None, [{"row": row, "field": _column(exc), "message": exc.detail}]
    existing = await uow.session.get(Service, data.service_code)
    changed = [] if existing is None else [k for k, v in fields.items() if not _same(getattr(existing, k), v)]
    if existing is not None and existing.active != entry.active:
        changed.append("active")
    return _Plan(entry, fields, department, calendar, existing, changed), []


async def import_catalog(uow: UnitOfWork, deps: Deps, *, entries: list[CatalogEntry], rows: int,
                         resolve: Resolver, actor: Actor, dry_run: bool = False,
                         errors: list[Error] | None = None) -> CatalogReport:
    """Check every service, then (unless ``dry_run`` or any problem, ``errors`` of the file's own
    included) store the new and changed ones. Never commits."""
    report = CatalogReport(ok=False, rows=rows, dry_run=dry_run, errors=list(errors or []))
    plans: list[_Plan] = []
    for entry in entries:
        plan, problems = await _check(uow, deps, entry, resolve)
        report.errors += problems
        if plan is not None:
            plans.append(plan)
    report.errors.sort(key=lambda e: (e["row"], e["field"]))
    if report.errors:
        return report
    report.ok, report.services = True, len(plans)
    now, who = utcnow(), actor.as_dict()
    for plan in plans:
        code = plan.entry.data.service_code
        if plan.existing is None:
            report.created += 1
            report.changes.append({"service_code": code, "change": "created", "fields": []})
        elif plan.changed:
            report.updated += 1
            report.changes.append({"service_code": code, "change": "updated", "fields": plan.changed})
        else:
            report.unchanged += 1
            report.changes.append({"service_code": code, "change": "unchanged", "fields": []})
        if dry_run:
            continue
        if plan.existing is None:
            service = Service(**plan.fields, active=plan.entry.active, changed_by=who, created_at=now, updated_at=now)
            service.department, service.calendar = plan.department, plan.calendar
            uow.session.add(service)
        elif plan.changed:
            for name, value in plan.fields.items():
                setattr(plan.existing, name, value)
            plan.existing.active = plan.entry.active
            plan.existing.department, plan.existing.calendar = plan.department, plan.calendar
            plan.existing.updated_at, plan.existing.changed_by = now, who
    if not dry_run:
        await uow.flush()
        log.info("catalog_imported", created=report.created, updated=report.updated, unchanged=report.unchanged,
                 by=actor.label)
    return report


def departments_resolver(uow: UnitOfWork, deps: Deps) -> Resolver:
    """Departments from the local copy (the directory's, as its events leave them), else from the
    directory itself when ``deps`` has it (stored locally, as the catalog admin API does); each code
    is looked up once per import."""
    known: dict[str, Department | Invalid] = {}

    async def lookup(code: str, column: str) -> Department:
        dept = await uow.session.get(Department, code)
        if dept is None:
            if deps.departments is None:
                raise Invalid(f"department {code!r} is not known here (import the directory first)", field=column)
            try:
                doc = await deps.departments.get(code)
            except DirectoryUnreachable as exc:
                raise Invalid(f"department {code!r} is not known locally and the directory could not be asked",
                              field=column) from exc
            if doc is None:
                raise Invalid(f"department {code!r} does not exist in the directory", field=column)
            if not doc.get("active", True):
                raise Invalid(f"department {code!r} is inactive in the directory", field=column)
            dept = await uow.add_if_absent(Department, dict(code=doc["code"], name=doc.get("name", code),
                                                            department_id=doc.get("id"), active=True))
        if not dept.active:
            raise Invalid(f"department {code!r} is inactive in the directory", field=column)
        return dept

    async def resolve(code: str, column: str) -> Department:
        if code not in known:
            try:
                known[code] = await lookup(code, column)
            except Invalid as exc:
                known[code] = exc
        found = known[code]
        if isinstance(found, Invalid):
            raise Invalid(found.detail, field=column)
        return found

    return resolve
