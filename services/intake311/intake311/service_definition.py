"""The service definition as the catalog admin reads it (GET /admin/services[/{code}]): the service,
its level, attributes, duplicate policy and department rules, each rule with its department's name
and, for a rule by area, the area's name in the layer's version in force now (intake311.ownership)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from citystat_common.uow import UnitOfWork
from intake311 import schemas, service
from intake311.area_rules import AreaNames, areas_in_force, rule_layers
from intake311.models import Service
from intake311.ownership import is_area_rule
from intake311.ownership_schemas import AreaRuleRead, AttributeRuleRead


def _rules(s: Service, areas: AreaNames) -> list[AttributeRuleRead | AreaRuleRead]:
    out: list[AttributeRuleRead | AreaRuleRead] = []
    for r in s.department_rules or []:
        agency = r.get("department_name") or r["department_code"]
        if is_area_rule(r):
            name = areas.get(r["layer"], {}).get(r["area"])
            out.append(AreaRuleRead(layer=r["layer"], area=r["area"], area_name=name, area_in_force=name is not None,
                                    department_code=r["department_code"], agency_responsible=agency))
        else:
            out.append(AttributeRuleRead(attribute=r["attribute"], value=r["value"], department_code=r["department_code"],
                                         agency_responsible=agency))
    return out


def service_read(s: Service, areas: AreaNames | None = None) -> schemas.ServiceAdminRead:
    """``areas``: the areas in force of the layers the rules name (``service_reads`` reads them)."""
    return schemas.ServiceAdminRead(
        service_code=s.service_code, service_name=s.service_name, description=s.description, group=s.group_name,
        keywords=[k.strip() for k in s.keywords.split(",") if k.strip()], type=s.type, metadata=s.metadata_flag,
        department_code=s.department_code, agency_responsible=s.department.name if s.department else s.department_code,
        service_level=schemas.ServiceLevel(amount=s.sla_amount, unit=s.sla_unit, calendar=s.calendar_code,  # type: ignore[arg-type]
                                           rules=s.sla_rules or []),  # type: ignore[arg-type]
        duplicates=schemas.DuplicatePolicy(**s.duplicate_policy) if s.duplicate_policy else None,
        service_level_text=service.service_level_text(s), service_notice=s.service_notice,
        attributes=s.attributes or [], active=s.active, created_at=s.created_at, updated_at=s.updated_at,
        changed_by=schemas.ActorRead(**s.changed_by) if s.changed_by else None,
        department_rules=_rules(s, areas or {}),
    )


async def service_reads(uow: UnitOfWork, *, services: Sequence[Service], now: datetime) -> list[schemas.ServiceAdminRead]:
    """The definitions of ``services``, with one read of the area names their rules need (none
    when no rule is by area)."""
    layers = set().union(*(rule_layers(s.department_rules or []) for s in services)) if services else set()
    areas = await areas_in_force(uow, layers=layers, now=now)
    return [service_read(s, areas) for s in services]
