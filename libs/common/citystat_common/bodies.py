"""Bodies of rows a client uploads (a directory import, a bulk load): JSON, as a list or as an
object holding the list under one key, or CSV with a header row. A problem with the body as a
whole is one error item ``{"row": 0, "field", "message"}`` of the service's 422 report."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import orjson

CSV_TYPES = ("text/csv", "application/csv")
JSON_TYPES = ("application/json", "")  # no content type: JSON, as the API documents


@dataclass(frozen=True)
class RowsBody:
    """How one endpoint's rows are sent, and the words of its refusals."""

    key: str  # {"<key>": [...]} is accepted as well as a bare list
    header: str  # the CSV header, named in the errors
    required: frozenset[str] = frozenset()  # CSV columns that must be in the header
    blank_is_none: bool = False  # CSV: an empty cell is None; a column without a name is dropped
    no_header: str = "expected the CSV header {header}"
    not_a_list: str = "expected a list or {{\"{key}\": [...]}}"
    empty: str | None = None  # the message for an empty JSON list, when that is an error here


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _error(message: str, field: str = "body") -> dict[str, Any]:
    return {"row": 0, "field": field, "message": message}


def read_rows(raw: bytes, content_type: str | None, spec: RowsBody) -> tuple[list[Any], dict[str, Any] | None]:
    """(the rows as read, or [] and the error with the body as a whole)."""
    ctype = media_type(content_type)
    if ctype in CSV_TYPES:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            return [], _error("CSV must be UTF-8")
        reader = csv.DictReader(io.StringIO(text))
        if spec.blank_is_none:
            rows: list[Any] = [{k: (v if v != "" else None) for k, v in r.items() if k} for r in reader]
        else:
            rows = list(reader)
        if reader.fieldnames is None or not spec.required <= set(reader.fieldnames):
            return [], _error(spec.no_header.format(header=spec.header))
        return rows, None
    if ctype in JSON_TYPES:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return [], _error(f"not JSON: {exc}")
        doc = doc.get(spec.key) if isinstance(doc, dict) else doc
        if not isinstance(doc, list):
            return [], _error(spec.not_a_list.format(key=spec.key))
        if not doc and spec.empty is not None:
            return [], _error(spec.empty)
        return doc, None
    return [], _error("send application/json or text/csv", field="content-type")
