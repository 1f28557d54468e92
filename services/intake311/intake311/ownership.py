"""Which department owns a request: the service's owner, unless one of the service's department
rules matches the request's attribute values (issue 20: "Encampment" handled by two agencies,
by location). The rules are part of the service definition (GET /admin/services/{code}); they name
a list attribute of the service and one of its values, checked when the service is saved."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from citystat_common.errors import Invalid
from intake311.service_levels import LIST_TYPES


def owner(default: tuple[str, str], rules: Sequence[Mapping[str, Any]], attributes: Mapping[str, Any]) -> tuple[str, str]:
    """(department code, department name) of a request with these attribute values: the first rule
    whose attribute has its value (a multivaluelist: among those chosen), else ``default``."""
    for rule in rules:
        given = attributes.get(rule["attribute"])
        if given == rule["value"] or (isinstance(given, list) and rule["value"] in given):
            return rule["department_code"], rule.get("department_name") or rule["department_code"]
    return default


def check_rules(rules: Sequence[Mapping[str, Any]], attributes: Sequence[Mapping[str, Any]]) -> None:
    """422 unless every rule names a list attribute of the service and one of its values, and no two
    rules name the same attribute value (the second would never apply)."""
    by_code = {a["code"]: a for a in attributes}
    seen: set[tuple[str, str]] = set()
    for i, rule in enumerate(rules):
        field = f"department_rules[{i}]"
        attr = by_code.get(rule["attribute"])
        if attr is None or attr.get("datatype") not in LIST_TYPES:
            raise Invalid(f"{field}: {rule['attribute']!r} is not a list attribute of this service", field=field)
        if rule["value"] not in {v["key"] for v in attr.get("values", [])}:
            raise Invalid(f"{field}: {rule['value']!r} is not a value of {rule['attribute']!r}", field=field)
        if (rule["attribute"], rule["value"]) in seen:
            raise Invalid(f"{field}: another rule already gives {rule['attribute']}={rule['value']!r} a department",
                          field=field)
        seen.add((rule["attribute"], rule["value"]))
