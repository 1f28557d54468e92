"""Catalog writes (scope 311:admin): service types with their service levels, attribute rules and
duplicate policy, and business calendars. Every save is checked against what creating a request
will do with it: a level (or a rule) that the calendar cannot meet within the horizon, a rule on an
attribute the service does not have, a calendar change that would leave a service's level
unmeetable: each is a 422 here rather than a 500 on every POST later."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from citystat_common.auth import Actor
from citystat_common.db import utcnow
from citystat_common.errors import Conflict, Invalid
from citystat_common.uow import UnitOfWork
from intake311 import schemas
from intake311.area_rules import areas_a_rule_may_name, rule_layers
from intake311.deps import Deps
from intake311.models import Calendar, Department, Service
from intake311.ownership import check_rules
from intake311.service import business_calendar, require_service
from intake311.service_levels import Level, check_levels


async def get_calendar(uow: UnitOfWork, code: str) -> Calendar:
    cal = await uow.session.get(Calendar, code.upper())
    if cal is None:
        raise Invalid(f"no business calendar with code {code!r}", field="service_level.calendar")
    return cal


def check_service_levels(service: Service, cal: Calendar, timezone: str) -> None:
    check_levels(business_calendar(cal, timezone), Level(service.sla_amount, service.sla_unit),
                 service.sla_rules or [], service.attributes or [], now=utcnow(), calendar_code=cal.code)


def _attributes(attrs: list[schemas.AttributeDef]) -> list[dict[str, Any]]:
    # the bounds only where set: stored definitions keep the shape they had before bounds existed
    return [{k: v for k, v in a.model_dump(mode="json").items() if v is not None or k not in _BOUNDS} for a in attrs]


_BOUNDS = ("minimum", "maximum", "days_before", "days_after")


def _level_fields(level: schemas.ServiceLevel) -> dict[str, Any]:
    return {"sla_amount": level.amount, "sla_unit": level.unit, "sla_rules": [r.model_dump() for r in level.rules]}


def department_rules(rules: list[schemas.DepartmentRule], departments: dict[str, Department]) -> list[dict[str, Any]]:
    """The rules as stored, with each department's name (the request's agency_responsible): by
    attribute value, or by area of a boundary layer (intake311.ownership)."""
    out: list[dict[str, Any]] = []
    for r in rules:
        match = {"layer": r.layer, "area": r.area} if r.layer is not None else {"attribute": r.attribute, "value": r.value}
        dept = departments[r.department_code]
        out.append({**match, "department_code": dept.code, "department_name": dept.name})
    return out


async def check_department_rules(uow: UnitOfWork, deps: Deps, *, service: Service, rules_changed: bool) -> None:
    """The rules against the service's attributes and, when the rules themselves are being saved,
    against the boundary layers (an area in the version in force now or in one starting later)."""
    rules = service.department_rules or []
    areas = await areas_a_rule_may_name(uow, layers=rule_layers(rules), now=deps.now()) if rules_changed else None
    check_rules(rules, service.attributes or [], areas)


def stored_fields(data: schemas.ServiceCreate, *, department: Department, calendar: Calendar,
                  rule_departments: dict[str, Department] | None) -> dict[str, Any]:
    """The columns a service is stored with (the catalog import compares them to tell a change)."""
    return dict(
        service_code=data.service_code, service_name=data.service_name, description=data.description,
        group_name=data.group, keywords=", ".join(data.keywords), type=data.type, department_code=department.code,
        calendar_code=calendar.code, service_notice=data.service_notice, attributes=_attributes(data.attributes),
        duplicate_policy=data.duplicates.model_dump() if data.duplicates else None, **_level_fields(data.service_level),
        department_rules=department_rules(data.department_rules, rule_departments or {}),
    )


async def create_service(uow: UnitOfWork, deps: Deps, *, data: schemas.ServiceCreate, department: Department,
                         actor: Actor, rule_departments: dict[str, Department] | None = None) -> Service:
    if await uow.session.get(Service, data.service_code) is not None:
        raise Conflict(f"a service with code {data.service_code!r} exists", field="service_code")
    cal = await get_calendar(uow, data.service_level.calendar)
    service = Service(**stored_fields(data, department=department, calendar=cal, rule_departments=rule_departments),
                      active=True, changed_by=actor.as_dict())
    check_service_levels(service, cal, deps.timezone)
    await check_department_rules(uow, deps, service=service, rules_changed=True)
    service.department, service.calendar = department, cal
    uow.session.add(service)
    await uow.flush()
    return service


async def update_service(uow: UnitOfWork, deps: Deps, *, code: str, data: schemas.ServiceUpdate,
                         department: Department | None, actor: Actor, rule_departments: dict[str, Department] | None = None) -> Service:
    service = await require_service(uow, code)
    fields = data.model_dump(exclude_unset=True)
    if "service_name" in fields and data.service_name:
        service.service_name = data.service_name
    if "description" in fields and data.description is not None:
        service.description = data.description
    if "group" in fields and data.group is not None:
        service.group_name = data.group
    if "keywords" in fields and data.keywords is not None:
        service.keywords = ", ".join(data.keywords)
    if "type" in fields and data.type:
        service.type = data.type
    if "service_notice" in fields:
        service.service_notice = data.service_notice
    if "attributes" in fields and data.attributes is not None:
        service.attributes = _attributes(data.attributes)
    if "duplicates" in fields:
        service.duplicate_policy = data.duplicates.model_dump() if data.duplicates else None
    if "active" in fields and data.active is not None:
        service.active = data.active
    if "department_rules" in fields:
        service.department_rules = department_rules(data.department_rules or [], rule_departments or {})
    if {"department_rules", "attributes"} & set(fields):
        await check_department_rules(uow, deps, service=service, rules_changed="department_rules" in fields)
    if department is not None:
        service.department_code = department.code
        service.department = department
    if "service_level" in fields and data.service_level is not None:
        cal = await get_calendar(uow, data.service_level.calendar)
        for name, value in _level_fields(data.service_level).items():
            setattr(service, name, value)
        service.calendar_code, service.calendar = cal.code, cal
    if {"service_level", "attributes"} & set(fields) or data.active:
        # the rules are checked against the attributes too, whichever of the two changed (retiring is
        # never refused: it is how a service with a bad level is taken out of the catalog)
        check_service_levels(service, service.calendar, deps.timezone)
    service.updated_at = utcnow()
    service.changed_by = actor.as_dict()
    return service


async def put_calendar(uow: UnitOfWork, deps: Deps, *, code: str, data: schemas.CalendarPut, actor: Actor) -> Calendar:
    cal = await uow.session.get(Calendar, code.upper())
    if cal is None:
        cal = Calendar(code=code.upper())
        uow.session.add(cal)
    cal.name = data.name
    cal.opens, cal.closes = data.opens, data.closes
    cal.workdays = sorted(set(data.workdays))
    cal.holidays = sorted({d.isoformat() for d in data.holidays})
    cal.federal_holidays = data.federal_holidays
    cal.updated_at = utcnow()
    cal.changed_by = actor.as_dict()
    # every service on this calendar must still be able to keep its promise on the new hours
    users = (await uow.session.execute(sa.select(Service).where(Service.calendar_code == cal.code))).unique().scalars()
    for service in users:
        try:
            check_service_levels(service, cal, deps.timezone)
        except Invalid as exc:
            raise Invalid(f"service {service.service_code}: {exc.detail}", field="opens") from exc
    await uow.flush()
    return cal
