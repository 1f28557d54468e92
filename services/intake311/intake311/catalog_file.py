"""A city's service catalog as a file (issue 20): the rows of ``import-catalog`` and
``POST /admin/catalog/import``, read into the services they describe. Pure: no database.

One row per service, or one row per attribute of a service: rows with the same ``service_code``
are one service, its columns given on any of them (a value given twice must agree), each row with
an ``attribute_code`` one attribute. The columns (README, "How a city onboards", describes each):

    service_code, service_name, group, department_code, service_level_amount, service_level_unit,
    calendar, type, keywords, description, service_notice, duplicates, active,
    service_level_rules, department_rules,
    attribute_code, attribute_description, attribute_datatype, attribute_required, attribute_order,
    attribute_values, attribute_datatype_description, attribute_minimum, attribute_maximum

Lists in one cell: ``attribute_values`` is ``key=Name|key=Name``; ``service_level_rules`` is
``ATTRIBUTE=value -> 1 business_days; ...``; ``department_rules`` is ``ATTRIBUTE=value -> DEPT; ...`` or, by area, ``area:LAYER=CODE -> DEPT``.
Every problem of the file is reported at once as ``{"row", "field", "message"}`` (row 1 is the
first row after the header; row 0 the file as a whole; ``field`` a column of the file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from citystat_common.bodies import RowsBody, read_rows
from intake311.schemas import ServiceCreate

Error = dict[str, Any]

SERVICE_COLUMNS = (
    "service_code", "service_name", "group", "department_code", "service_level_amount", "service_level_unit",
    "calendar", "type", "keywords", "description", "service_notice", "duplicates", "active",
    "service_level_rules", "department_rules",
)
ATTRIBUTE_COLUMNS = (
    "attribute_code", "attribute_description", "attribute_datatype", "attribute_required", "attribute_order",
    "attribute_values", "attribute_datatype_description", "attribute_minimum", "attribute_maximum",
)
COLUMNS = SERVICE_COLUMNS + ATTRIBUTE_COLUMNS
REQUIRED = frozenset({"service_code"})
HEADER = ",".join(COLUMNS)

BODY = RowsBody(key="rows", header=HEADER, required=REQUIRED, blank_is_none=True,
                no_header="expected a CSV header naming at least service_code (all columns: {header})",
                not_a_list="expected a list of rows or {{\"{key}\": [...]}}", empty="no rows")

YES = {"yes", "y", "true", "1"}
NO = {"no", "n", "false", "0"}

# what pydantic's location in a ServiceCreate is called in the file
_FIELD_COLUMN = {"service_level": "service_level_amount", "keywords": "keywords", "group": "group",
                 "duplicates": "duplicates", "department_rules": "department_rules"}
_LEVEL_COLUMN = {"amount": "service_level_amount", "unit": "service_level_unit", "calendar": "calendar",
                 "rules": "service_level_rules"}


@dataclass
class CatalogEntry:
    """One service of the file: what to store, whether it is offered, and the rows it came from."""

    data: ServiceCreate
    active: bool
    rows: list[int]


@dataclass
class _Draft:
    code: str
    rows: list[int] = field(default_factory=list)
    values: dict[str, tuple[str, int]] = field(default_factory=dict)  # column -> (value, row it came from)
    attributes: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def _cell(value: Any) -> str | None:
    """A cell as text: JSON bodies may send numbers and booleans where CSV sends text."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    return text if text.strip() else None


def _flag(value: str | None, default: bool) -> bool | None:
    if value is None:
        return default
    low = value.strip().lower()
    return True if low in YES else False if low in NO else None


def parse(raw: bytes, content_type: str | None) -> tuple[int, list[CatalogEntry], list[Error]]:
    """(rows read, the services the file describes, every problem). A service with a problem is left
    out of the entries; the caller stores nothing when there are problems."""
    docs, problem = read_rows(raw, content_type, BODY)
    if problem is not None:
        return len(docs), [], [problem]
    entries, errors = read_catalog(docs)
    return len(docs), entries, errors


def read_catalog(docs: list[Any]) -> tuple[list[CatalogEntry], list[Error]]:
    errors: list[Error] = []
    drafts: dict[str, _Draft] = {}
    for number, doc in enumerate(docs, start=1):
        if not isinstance(doc, dict):
            errors.append({"row": number, "field": "row", "message": "a row is an object of column: value"})
            continue
        unknown = sorted(k for k in doc if k not in COLUMNS)
        errors += [{"row": number, "field": k, "message": "not a column of the catalog file"} for k in unknown]
        cells = {k: _cell(doc.get(k)) for k in COLUMNS}
        code = cells["service_code"]
        if code is None:
            errors.append({"row": number, "field": "service_code", "message": "every row names its service_code"})
            continue
        draft = drafts.setdefault(code, _Draft(code))
        draft.rows.append(number)
        for column in SERVICE_COLUMNS[1:]:
            value = cells[column]
            if value is None:
                continue
            earlier = draft.values.setdefault(column, (value, number))
            if earlier[0] != value:
                errors.append({"row": number, "field": column,
                               "message": f"{code!r} has {earlier[0]!r} here on row {earlier[1]}"})
        if cells["attribute_code"] is not None:
            attr, attr_errors = _attribute(cells, number, position=len(draft.attributes) + 1)
            errors += attr_errors
            if any(a["code"] == attr["code"] for _, a in draft.attributes):
                errors.append({"row": number, "field": "attribute_code",
                               "message": f"{code!r} has attribute {attr['code']!r} on an earlier row"})
            else:
                draft.attributes.append((number, attr))
        elif any(cells[c] is not None for c in ATTRIBUTE_COLUMNS):
            errors.append({"row": number, "field": "attribute_code", "message": "attribute columns given without an attribute_code"})
    if not docs:
        errors.append({"row": 0, "field": "body", "message": "no rows"})
    entries = []
    for draft in drafts.values():
        entry, entry_errors = _service(draft)
        errors += entry_errors
        if entry is not None and not entry_errors:
            entries.append(entry)
    return entries, sorted(errors, key=lambda e: (e["row"], e["field"]))


def _attribute(cells: dict[str, str | None], row: int, *, position: int) -> tuple[dict[str, Any], list[Error]]:
    errors: list[Error] = []
    attr: dict[str, Any] = {"code": cells["attribute_code"], "description": cells["attribute_description"],
                            "datatype": (cells["attribute_datatype"] or "string").strip(),
                            "datatype_description": cells["attribute_datatype_description"]}
    required = _flag(cells["attribute_required"], False)
    if required is None:
        errors.append({"row": row, "field": "attribute_required", "message": "yes or no"})
    attr["required"] = bool(required)
    order = cells["attribute_order"]
    try:
        attr["order"] = int(order) if order is not None else position
    except ValueError:
        errors.append({"row": row, "field": "attribute_order", "message": "a whole number"})
    for bound in ("minimum", "maximum"):
        text = cells[f"attribute_{bound}"]
        if text is not None:
            try:
                attr[bound] = float(text)
            except ValueError:
                errors.append({"row": row, "field": f"attribute_{bound}", "message": "a number"})
    values = []
    for item in (cells["attribute_values"] or "").split("|"):
        if item.strip():
            key, _, name = item.partition("=")
            values.append({"key": key.strip(), "name": (name or key).strip()})
    attr["values"] = values
    return attr, errors


def _rules(text: str | None, row: int, column: str) -> tuple[list[tuple[str, str, str]], list[Error]]:
    """``ATTRIBUTE=value -> target; ...`` as (attribute, value, target) triples."""
    rules, errors = [], []
    for item in (text or "").split(";"):
        if not item.strip():
            continue
        condition, arrow, target = item.partition("->")
        attribute, equals, value = condition.partition("=")
        if not arrow or not equals or not attribute.strip() or not value.strip() or not target.strip():
            errors.append({"row": row, "field": column, "message": f"{item.strip()!r}: expected ATTRIBUTE=value -> ..."})
            continue
        rules.append((attribute.strip(), value.strip(), target.strip()))
    return rules, errors


AREA_PREFIX = "area:"  # ``area:ward=W3 -> PARKS``: a rule by area of a boundary layer (issue 21)


def _department_rule(condition: str, value: str, department: str) -> dict[str, str]:
    if condition.startswith(AREA_PREFIX):
        return {"layer": condition[len(AREA_PREFIX):].strip(), "area": value, "department_code": department}
    return {"attribute": condition, "value": value, "department_code": department}


def _service(draft: _Draft) -> tuple[CatalogEntry | None, list[Error]]:
    v = {k: value for k, (value, _) in draft.values.items()}
    where = {k: row for k, (_, row) in draft.values.items()}
    first = draft.rows[0]
    errors: list[Error] = []
    for column in ("service_name", "department_code", "service_level_amount", "service_level_unit"):
        if column not in v:
            errors.append({"row": first, "field": column, "message": f"service {draft.code!r} needs a {column}"})
    active = _flag(v.get("active"), True)
    if active is None:
        errors.append({"row": where["active"], "field": "active", "message": "yes or no"})
    duplicates: dict[str, Any] | None = None
    if "duplicates" in v:
        enabled = _flag(v["duplicates"], True)
        if enabled is None:
            errors.append({"row": where["duplicates"], "field": "duplicates", "message": "yes (linked as the city's settings say) or no (never)"})
        duplicates = {"enabled": bool(enabled)}
    level_rules, rule_errors = _rules(v.get("service_level_rules"), where.get("service_level_rules", first), "service_level_rules")
    errors += rule_errors
    sla_rules = []
    for attribute, value, target in level_rules:
        amount, _, unit = target.partition(" ")
        sla_rules.append({"attribute": attribute, "value": value, "amount": amount.strip(), "unit": unit.strip()})
    dept_rules, rule_errors = _rules(v.get("department_rules"), where.get("department_rules", first), "department_rules")
    errors += rule_errors
    doc: dict[str, Any] = {
        "service_code": draft.code, "service_name": v.get("service_name", ""), "group": v.get("group", "").strip(),
        "department_code": v.get("department_code", ""), "type": (v.get("type") or "realtime").strip(),
        "keywords": v.get("keywords", ""), "description": v.get("description", ""),
        "service_notice": v.get("service_notice"), "duplicates": duplicates,
        "service_level": {"amount": v.get("service_level_amount", "0"), "unit": (v.get("service_level_unit") or "").strip(),
                          "calendar": (v.get("calendar") or "CITY").strip(), "rules": sla_rules},
        "attributes": [a for _, a in draft.attributes],
        "department_rules": [_department_rule(a, val, d) for a, val, d in dept_rules],
    }
    if errors:
        return None, errors
    try:
        data = ServiceCreate.model_validate(doc)
    except ValidationError as exc:
        return None, [_located(e, draft, where) for e in exc.errors()]
    return CatalogEntry(data=data, active=bool(active), rows=draft.rows), []


def _located(error: Any, draft: _Draft, where: dict[str, int]) -> Error:
    """A validation error at the row and column of the file that gave the value."""
    loc = [str(p) for p in error["loc"]]
    message = error["msg"].removeprefix("Value error, ")
    if loc and loc[0] == "attributes" and len(loc) > 1 and loc[1].isdigit() and int(loc[1]) < len(draft.attributes):
        row = draft.attributes[int(loc[1])][0]
        column = f"attribute_{loc[2]}" if len(loc) > 2 and loc[2] != "values" else "attribute_values"
        return {"row": row, "field": column if len(loc) > 2 else "attribute_code", "message": message}
    if loc and loc[0] == "service_level" and len(loc) > 1:
        column = _LEVEL_COLUMN.get(loc[1], "service_level_amount")
    else:
        column = _FIELD_COLUMN.get(loc[0], loc[0]) if loc else "service_code"
    if column not in COLUMNS:
        column = "service_code"
    return {"row": where.get(column, draft.rows[0]), "field": column, "message": message}
