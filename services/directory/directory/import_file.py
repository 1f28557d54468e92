"""Reading an import file: its rows (JSON or CSV), each row's own rules, and the contradictions
between rows of one file (two names for one department, two holders of one role...). Pure: no
database. Errors are ``{"row", "field", "message"}`` (and ``rows``: every row involved)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from pydantic import ValidationError

from citystat_common.bodies import RowsBody, read_rows
from directory.schemas import ImportRow

IMPORT_HEADER = "department_code,department_name,cluster_code,cluster_name,role,person_name,person_title,person_email,person_phone"
Error = dict[str, Any]
Numbered = list[tuple[int, ImportRow]]


BODY = RowsBody(key="rows", header=IMPORT_HEADER, blank_is_none=True, no_header="empty CSV; expected header {header}",
                not_a_list="expected a list of rows or {{\"{key}\": [...]}}")


def parse(raw: bytes, content_type: str | None) -> tuple[int, Numbered, list[Error]]:
    """(rows read, the valid rows with their 1-based numbers, the errors)."""
    docs, problem = read_rows(raw, content_type, BODY)
    if problem is not None:
        return len(docs), [], [problem]
    rows: Numbered = []
    errors: list[Error] = []
    for number, doc in enumerate(docs, start=1):
        try:
            rows.append((number, ImportRow.model_validate(doc)))
        except ValidationError as exc:
            for e in exc.errors():
                errors.append({"row": number, "field": ".".join(str(p) for p in e["loc"]) or "row", "message": e["msg"]})
    if not docs:
        errors.append({"row": 0, "field": "body", "message": "no rows"})
    errors += row_rules(rows) + contradictions(rows)
    return len(docs), rows, sorted(errors, key=lambda e: e["row"])


def row_rules(rows: Numbered) -> list[Error]:
    errors = []
    for n, row in rows:
        if row.role is None and row.person_name:
            errors.append({"row": n, "field": "role", "message": "person_name given without a role"})
        if row.role is not None and not row.person_name:
            errors.append({"row": n, "field": "person_name", "message": f"role {row.role} needs a person_name"})
        if row.role == "deputy_mayor" and not row.cluster_code:
            errors.append({"row": n, "field": "cluster_code", "message": "deputy_mayor needs a cluster_code"})
    return errors


def person_key(row: ImportRow) -> str | None:
    """Who a row names: by email when it has one, else by name (the importer matches the same way)."""
    if not row.person_name:
        return None
    return f"email:{row.person_email.lower()}" if row.person_email else f"name:{row.person_name}"


def _role_scope(row: ImportRow) -> Hashable | None:
    if row.role is None:
        return None
    if row.role == "managing_director":
        return ("managing_director",)
    if row.role == "deputy_mayor":
        return ("deputy_mayor", row.cluster_code) if row.cluster_code else None
    return (row.role, row.department_code)


def _describe(scope: Hashable) -> str:
    parts = scope if isinstance(scope, tuple) else (scope,)
    return " ".join(str(p) for p in reversed(parts))


# (what, field, key of the thing, its value): one file gives each thing one value.
CHECKS: list[tuple[str, str, Callable[[ImportRow], Hashable | None], Callable[[ImportRow], Hashable | None]]] = [
    ("the name of department", "department_name", lambda r: r.department_code, lambda r: r.department_name),
    ("the cluster of department", "cluster_code", lambda r: r.department_code, lambda r: r.cluster_code),
    ("the name of cluster", "cluster_name", lambda r: r.cluster_code, lambda r: r.cluster_name),
    ("the holder of", "person_name", _role_scope, lambda r: person_key(r)),
    ("the name of the person with email", "person_name",
     lambda r: r.person_email.lower() if r.person_email else None, lambda r: r.person_name),
    ("the title of", "person_title", person_key, lambda r: r.person_title),
    ("the phone of", "person_phone", person_key, lambda r: r.person_phone),
]


def contradictions(rows: Numbered) -> list[Error]:
    errors: list[Error] = []
    for what, field, key_of, value_of in CHECKS:
        seen: dict[Hashable, dict[Hashable, list[int]]] = {}
        for n, row in rows:
            key, value = key_of(row), value_of(row)
            if key is not None and value is not None:
                seen.setdefault(key, {}).setdefault(value, []).append(n)
        for key, values in seen.items():
            if len(values) < 2:
                continue
            involved = sorted(n for ns in values.values() for n in ns)
            shown = "; ".join(f"{_shown(v)} in row{'s' if len(ns) > 1 else ''} {', '.join(map(str, ns))}" for v, ns in values.items())
            message = f"{what} {_describe(key)} differs between rows {', '.join(map(str, involved))}: {shown}"
            first = next(iter(values))
            for value, ns in values.items():
                if value != first:
                    errors += [{"row": n, "rows": involved, "field": field, "message": message} for n in ns]
    return errors


def _shown(value: Hashable) -> str:
    text = str(value)
    return repr(text.split(":", 1)[1]) if text.startswith(("email:", "name:")) else repr(text)
