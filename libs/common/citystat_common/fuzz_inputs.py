"""What the fuzzer sends (citystat_common.fuzzing): the edge values that have broken services, and
the slots of an operation (path, query, header, body fields at any depth) that they go in."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# --- the edge values ----------------------------------------------------------------------------

EDGE_DATETIMES = [
    "0001-01-01T00:00:00+05:00",  # parses; overflows when moved to UTC
    "9999-12-31T23:00:00-05:00",  # the other way
    "9999-12-31T23:59:59Z", "1900-01-01", "0001-01-01",
    "2026-06-01T12:00:00",  # naive
    "2026-13-45", "2026-02-30T25:61:00+99:00", "+10000-01-01T00:00:00Z",
]
EDGE_PERIODS = ["0001-01", "9999-12", "9999-W99", "0001-W01", "2026-W53", "FY0001-Q1", "FY9999-Q4"]
EDGE_NUMERIC_TEXT = ["NaN", "-Infinity", "1e308", "9223372036854775808", "-0",
                     "\u0661\u0662"]  # Arabic-Indic digits: int() reads them
LONG_TEXT = "\u00e9" * 2500  # 2,500 characters, 5,000 bytes
EDGE_TEXT = ["", LONG_TEXT, "\U0001d518\U0001d52b \u2603 \U0001f3d9\ufe0f \u202eRTL", "a\x00b", "'\"<>;--"]
STRING_EDGES: list[Any] = [*EDGE_DATETIMES, *EDGE_PERIODS, *EDGE_NUMERIC_TEXT, *EDGE_TEXT]
NUMBER_EDGES: list[Any] = [
    1e308, -1e308, math.nan, -math.inf, 2**63, -(2**63) - 1, 2**31, -0.0, 5e-324, 10**400, -1, 0,
    "NaN", "Infinity", "9223372036854775808",
]
BOOLEAN_EDGES: list[Any] = ["NaN", 2**63, LONG_TEXT]
ENUM_EDGES: list[Any] = ["9999-W99", "\U0001f3d9\ufe0f\x00", LONG_TEXT]
ALL_EDGES: list[Any] = [*STRING_EDGES, *NUMBER_EDGES[:12]]
# What a database refuses where another stores it: NUL in text (PostgreSQL), lengths past a
# VARCHAR's, integers past 32 or 64 bits, numbers past NUMERIC's range.
DATABASE_EDGES: list[Any] = ["a\x00b", LONG_TEXT, "", 2**31, 2**63, -(2**63) - 1, 10**400, 1e308, "9223372036854775808"]


# A path variant after the first (``.xml`` after ``.json``) renders the same answers differently:
# swept with what the rendering meets (text, control characters, the outlying dates) only.
RENDERING_EDGES: list[Any] = [*EDGE_TEXT, EDGE_DATETIMES[0], EDGE_DATETIMES[1], "NaN", 1e308, math.nan]


def is_rendering_edge(value: Any) -> bool:
    leaf = value[0] if isinstance(value, list) and value else value
    return any(type(leaf) is type(d) and (leaf == d or leaf != leaf and d != d) for d in RENDERING_EDGES)


def is_database_edge(value: Any) -> bool:
    leaf = value[0] if isinstance(value, list) and value else value
    return any(type(leaf) is type(d) and leaf == d for d in DATABASE_EDGES)


def edges_for(kind: str) -> list[Any]:
    return {"number": NUMBER_EDGES, "boolean": BOOLEAN_EDGES, "enum": ENUM_EDGES}.get(kind, STRING_EDGES)


# --- slots: where a value goes ------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    location: str  # path, query, header, body
    key: tuple[Any, ...]  # the parameter's name, or the path of keys to a body field (0: an array's item)
    kind: str  # string, number, boolean, enum, array, object, any
    item_kind: str = ""  # for an array of scalars

    @property
    def label(self) -> str:
        return f"{self.location}:" + ".".join(str(k) if k != 0 else "[0]" for k in self.key)


def _resolve(doc: dict[str, Any], schema: Any) -> dict[str, Any]:
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 20:
        node: Any = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema, seen = node, seen + 1
    return schema if isinstance(schema, dict) else {}


def _branches(doc: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _resolve(doc, schema)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            out = [b for sub in schema[key] for b in _branches(doc, sub)]
            return [b for b in out if b.get("type") != "null"] or [{"type": "null"}]
    return [schema]


def _kind(doc: dict[str, Any], schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The kind of a schema (the first non-null branch that says one) and that branch."""
    for b in _branches(doc, schema):
        if "enum" in b or "const" in b:
            return "enum", b
        t = b.get("type")
        if t in ("integer", "number"):
            return "number", b
        if t in ("string", "boolean", "array", "object"):
            return t, b
        if "properties" in b:
            return "object", b
    return "any", {}


def _body_slots(doc: dict[str, Any], schema: dict[str, Any], value: Any, key: tuple[Any, ...], depth: int) -> Iterator[Slot]:
    kind, branch = _kind(doc, schema)
    if kind == "object" and depth < 4:
        props = branch.get("properties") or {}
        names = list(props) + [k for k in (value if isinstance(value, dict) else {}) if k not in props]
        for name in names:
            yield from _body_slots(doc, props.get(name, {}), (value or {}).get(name) if isinstance(value, dict) else None,
                                   (*key, name), depth + 1)
        if not names:
            yield Slot("body", key, "object")
    elif kind == "array" and depth < 4:
        items = branch.get("items") or {}
        item_kind, _ = _kind(doc, items)
        if item_kind in ("object", "array"):
            first = value[0] if isinstance(value, list) and value else None
            yield from _body_slots(doc, items, first, (*key, 0), depth + 1)
        else:
            yield Slot("body", key, "array", item_kind)
    elif key:
        yield Slot("body", key, kind)


def operation_slots(doc: dict[str, Any], op: dict[str, Any], body: Any) -> list[Slot]:
    """Every parameter of an operation and every field of its body (the schema's and the base's)."""
    slots = []
    for p in op.get("parameters", []):
        p = _resolve(doc, p)
        if p.get("in") not in ("path", "query", "header"):
            continue
        kind, branch = _kind(doc, p.get("schema") or {})
        item_kind = _kind(doc, branch.get("items") or {})[0] if kind == "array" else ""
        slots.append(Slot(p["in"], (p["name"],), kind, item_kind))
    content = (op.get("requestBody") or {}).get("content") or {}
    for media in content.values():
        slots.extend(s for s in _body_slots(doc, media.get("schema") or {}, body, (), 0) if s not in slots)
        break  # one media type's fields: the others of an operation here describe the same fields
    return slots


def slot_values(slot: Slot) -> list[Any]:
    if slot.kind == "array":
        return [[v] for v in edges_for(slot.item_kind)] + [["9999-W99"] * 300]
    if slot.kind == "object":
        return [{"\x00": v} for v in ("9999-W99", 2**63)] + [[], "9999-W99"]
    values = edges_for(slot.kind)
    if slot.location == "header":  # what an HTTP header can carry at all
        return [v for v in values if isinstance(v, str) and header_safe(v)]
    return values


def header_safe(v: str) -> bool:
    return bool(v) and v == v.strip() and v.isascii() and v.isprintable() and len(v) < 1000


def set_in(body: Any, key: tuple[Any, ...], value: Any) -> Any:
    if not key:
        return value
    head, rest = key[0], key[1:]
    if head == 0:
        items = list(body) if isinstance(body, list) else []
        items[:1] = [set_in(items[0] if items else None, rest, value)]
        return items
    obj = dict(body) if isinstance(body, dict) else {}
    obj[head] = set_in(obj.get(head), rest, value)
    return obj
