"""What the department rules by area (intake311.ownership, issue 21) read from the boundary layers:
the areas a rule may name when a service is saved, the names the service definition shows, and the
rules a new layer version leaves without their area (a warning of the load). Reads only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from citystat_common.uow import UnitOfWork
from intake311 import areas_store
from intake311.areas import VersionInfo, in_force
from intake311.models import Area, Service
from intake311.ownership import is_area_rule

AreaNames = dict[str, dict[str, str]]  # layer -> {area code: name}


def rule_layers(rules: Iterable[Mapping[str, Any]]) -> set[str]:
    return {r["layer"] for r in rules if is_area_rule(r)}


async def _names(uow: UnitOfWork, version_layer: Mapping[int, str]) -> AreaNames:
    out: AreaNames = {layer: {} for layer in version_layer.values()}
    if version_layer:
        rows = await uow.session.execute(sa.select(Area.version_id, Area.code, Area.name)
                                         .where(Area.version_id.in_(sorted(version_layer))))
        for vid, code, name in rows:
            out[version_layer[vid]].setdefault(code, name)  # names of later versions only fill gaps
    return out


def _by_layer(versions: Sequence[VersionInfo], layers: set[str]) -> dict[str, list[VersionInfo]]:
    by_layer: dict[str, list[VersionInfo]] = {}
    for v in versions:
        if v.layer in layers:
            by_layer.setdefault(v.layer, []).append(v)
    return by_layer


async def areas_in_force(uow: UnitOfWork, *, layers: set[str], now: datetime) -> AreaNames:
    """The areas of each of ``layers`` in its version in force at ``now`` (a layer with none: no areas)."""
    if not layers:
        return {}
    current = {v.id: layer for layer, vs in _by_layer(await areas_store.version_infos(uow), layers).items()
               if (v := in_force(vs, now)) is not None}
    return {layer: {} for layer in layers} | await _names(uow, current)


async def areas_a_rule_may_name(uow: UnitOfWork, *, layers: set[str], now: datetime) -> AreaNames:
    """The areas a rule may name when a service is saved: those of the version in force now, and of
    any version that starts later (a city sets its rules for a new ward map before it takes effect).
    A layer that does not exist is absent."""
    if not layers:
        return {}
    by_layer = _by_layer(await areas_store.version_infos(uow), layers)
    wanted: dict[int, str] = {}
    for layer, versions in by_layer.items():
        current = in_force(versions, now)
        wanted |= {v.id: layer for v in versions if v is current or v.effective_from > now}
    names = await _names(uow, wanted)
    return {layer: names.get(layer, {}) for layer in by_layer}


async def rules_left_without_area(uow: UnitOfWork, *, layer: str, codes: set[str]) -> list[dict[str, Any]]:
    """The load's warnings: each service rule naming an area of ``layer`` that the new version (its
    ``codes``) does not have. The rule is kept; it routes nothing under that version."""
    out: list[dict[str, Any]] = []
    rows = await uow.session.execute(sa.select(Service.service_code, Service.department_rules)
                                     .order_by(Service.service_code))
    for code, rules in rows:
        for rule in rules or []:
            if is_area_rule(rule) and rule["layer"] == layer and rule["area"] not in codes:
                out.append({"feature": None, "code": rule["area"], "problem": (
                    f"service {code!r} routes area {rule['area']!r} to {rule['department_code']}, and this version "
                    f"has no area {rule['area']!r}: while it is in force the rule routes nothing (those requests "
                    "go to the next matching rule or the service's owner) until the service's rules are changed")})
    return out
