"""Which department owns a request: the service's owner, unless one of the service's department
rules matches the request. The rules are part of the service definition (GET /admin/services/{code})
and are checked when the service is saved. A rule names either

- a list attribute of the service and one of its values (issue 20: "Encampment" handled by two
  agencies, by location type), or
- an area of a boundary layer (issue 21: a park's trees go to Parks, a street's to Streets): it
  matches a request tagged with that area as of the request's own time (``areas_index``), so a rule
  follows the boundaries in force when the request came in.

The first rule that matches wins (attribute and area rules in one list, in the city's order). A rule
only decides the owner at intake: a transfer later overrides it, and re-tagging a layer
(``retag-areas``) never moves a request to another department.

When a layer's new version no longer has an area that a rule names, the rule is kept but matches no
request tagged under that version (the tags never carry the dropped code): those requests go to the
next matching rule or the owner. The load warns about each such rule, the service definition shows
it with ``area_in_force: false``, and saving the rules again refuses it until the city changes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from citystat_common.errors import Invalid
from intake311.service_levels import LIST_TYPES


def is_area_rule(rule: Mapping[str, Any]) -> bool:
    return "layer" in rule


def matches(rule: Mapping[str, Any], attributes: Mapping[str, Any], areas: Mapping[str, str | None]) -> bool:
    """Whether one rule gives a request with these attribute values and area codes (layer -> code,
    None: outside every area of that layer) to its department."""
    if is_area_rule(rule):
        code = areas.get(rule["layer"])
        return code is not None and code == rule["area"]
    given = attributes.get(rule["attribute"])
    return given == rule["value"] or (isinstance(given, list) and rule["value"] in given)


def owner(default: tuple[str, str], rules: Sequence[Mapping[str, Any]], attributes: Mapping[str, Any],
          areas: Mapping[str, str | None] | None = None) -> tuple[str, str]:
    """(department code, department name) of a request with these attribute values and areas: the
    first rule that matches (an attribute rule: its attribute has its value, or among those chosen of
    a multivaluelist; an area rule: the request is in that area), else ``default``."""
    for rule in rules:
        if matches(rule, attributes, areas or {}):
            return rule["department_code"], rule.get("department_name") or rule["department_code"]
    return default


def check_rules(rules: Sequence[Mapping[str, Any]], attributes: Sequence[Mapping[str, Any]],
                areas: Mapping[str, Mapping[str, str]] | None = None) -> None:
    """422 unless every attribute rule names a list attribute of the service and one of its values,
    every area rule (when ``areas`` is given: layer -> {code: name} of the areas a rule may name)
    names a loaded layer and one of those areas, and no two rules say the same (the second would
    never apply). ``areas`` None: the area rules are not checked against the layers (a save that
    does not change the rules must not fail on a rule a later layer version made stale)."""
    by_code = {a["code"]: a for a in attributes}
    seen: set[tuple[str, str, str]] = set()
    for i, rule in enumerate(rules):
        field = f"department_rules[{i}]"
        if is_area_rule(rule):
            key = ("area", rule["layer"], rule["area"])
            if areas is not None:
                _check_area(rule, areas, field)
            if key in seen:
                raise Invalid(f"{field}: another rule already gives {rule['layer']} {rule['area']!r} a department",
                              field=field)
        else:
            key = ("attribute", rule["attribute"], rule["value"])
            attr = by_code.get(rule["attribute"])
            if attr is None or attr.get("datatype") not in LIST_TYPES:
                raise Invalid(f"{field}: {rule['attribute']!r} is not a list attribute of this service", field=field)
            if rule["value"] not in {v["key"] for v in attr.get("values", [])}:
                raise Invalid(f"{field}: {rule['value']!r} is not a value of {rule['attribute']!r}", field=field)
            if key in seen:
                raise Invalid(f"{field}: another rule already gives {rule['attribute']}={rule['value']!r} a department",
                              field=field)
        seen.add(key)


def _check_area(rule: Mapping[str, Any], areas: Mapping[str, Mapping[str, str]], field: str) -> None:
    layer, code = rule["layer"], rule["area"]
    if layer not in areas:
        have = ", ".join(sorted(areas)) or "none loaded"
        raise Invalid(f"{field}: no boundary layer {layer!r} (layers: {have})", field=f"{field}.layer")
    if code not in areas[layer]:
        raise Invalid(f"{field}: layer {layer!r} has no area {code!r} in its version in force now or in one "
                      "that starts later", field=f"{field}.area")
