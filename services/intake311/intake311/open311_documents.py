"""Open311 documents: what a GeoReport v2 answer holds (services, service definitions, the public
shape of a request) and how it is written, in XML or JSON, with the spec's error documents. No I/O.

XML is written with ``xml.etree`` (never parsed here: input is form, query or JSON only).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

import orjson
from fastapi import Response

from intake311 import actors, service
from intake311.models import Service, ServiceRequest, StatusNote

XML_TYPE = "text/xml; charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"
FORMATS = ("xml", "json")

# How a list is spelt in XML: container tag -> item tag.
ITEM_TAGS = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
    "notes": "note",
    "outside_areas": "layer",
}

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class Open311Error(Exception):
    """One or more spec errors: (code, description) pairs; the HTTP status is the most serious."""

    def __init__(self, errors: list[tuple[int, str]]):
        super().__init__("; ".join(d for _, d in errors))
        self.errors = errors

    @property
    def status(self) -> int:
        codes = {c for c, _ in self.errors}
        for c in (403, 404, 409, 400):
            if c in codes:
                return c
        return max(codes) if codes else 400


# --- rendering ------------------------------------------------------------------------------


def fmt_datetime(value: datetime | None, tz: ZoneInfo) -> str | None:
    """ISO 8601 with the offset of the city's zone, to the second: 2026-11-24T05:31:00-05:00."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(tz).isoformat(timespec="seconds")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return _INVALID_XML.sub("", str(value))


def _build(parent: ET.Element, tag: str, value: Any) -> None:
    if isinstance(value, list):
        container = ET.SubElement(parent, tag)
        item_tag = ITEM_TAGS.get(tag, "item")
        for item in value:
            _build(container, item_tag, item)
        return
    el = ET.SubElement(parent, tag)
    if isinstance(value, Mapping):
        for k, v in value.items():
            _build(el, k, v)
    else:
        el.text = _text(value) or None


def to_xml(root: str, items: list[Any] | Mapping[str, Any]) -> bytes:
    """A document with an XML declaration: ``root`` holding items (a list) or fields (a mapping)."""
    el = ET.Element(root)
    if isinstance(items, Mapping):
        for k, v in items.items():
            _build(el, k, v)
    else:
        item_tag = ITEM_TAGS.get(root, "item")
        for item in items:
            _build(el, item_tag, item)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(el, encoding="unicode").encode("utf-8")


def render(fmt: str, root: str, doc: list[Any] | Mapping[str, Any], status: int = 200,
           headers: Mapping[str, str] | None = None) -> Response:
    if fmt == "json":
        body = orjson.dumps(doc)
        return Response(body, status_code=status, media_type=JSON_TYPE, headers=dict(headers or {}))
    return Response(to_xml(root, doc), status_code=status, media_type=XML_TYPE, headers=dict(headers or {}))


def error_response(fmt: str, exc: Open311Error) -> Response:
    doc = [{"code": code, "description": description} for code, description in exc.errors]
    return render(fmt if fmt in FORMATS else "xml", "errors", doc, status=exc.status)


# --- documents of the catalog and of requests ------------------------------------------------


def service_doc(s: Service, extensions: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "service_code": s.service_code,
        "service_name": s.service_name,
        "description": s.description,
        "metadata": s.metadata_flag,
        "type": s.type,
        "keywords": s.keywords,
        "group": s.group_name,
    }
    if extensions:
        doc["extended_attributes"] = {
            "department_code": s.department_code,
            "agency_responsible": s.department.name if s.department else s.department_code,
            "service_level": service.service_level_text(s),
        }
    return doc


def attribute_doc(a: dict[str, Any]) -> dict[str, Any]:
    doc = {
        "variable": a.get("variable", True),
        "code": a["code"],
        "datatype": a["datatype"],
        "required": a.get("required", False),
        "datatype_description": a.get("datatype_description"),
        "order": a.get("order"),
        "description": a.get("description"),
    }
    if a["datatype"] in ("singlevaluelist", "multivaluelist"):
        doc["values"] = [{"key": v["key"], "name": v["name"]} for v in a.get("values") or []]
    return doc


def public_request(r: ServiceRequest, service_name: str, agency: str | None, tz: ZoneInfo,
                   notes: list[StatusNote] | None, extensions: bool,
                   area_codes: dict[str, str | None] | None = None) -> dict[str, Any]:
    """The public shape: no personal data (email, phone, names, device and account ids) ever."""
    doc: dict[str, Any] = {
        "service_request_id": str(r.id),
        "status": r.status,
        "status_notes": r.status_notes,
        "service_name": service_name,
        "service_code": r.service_code,
        "description": r.description,
        "agency_responsible": agency or r.department_code,
        "service_notice": r.service_notice,
        "requested_datetime": fmt_datetime(r.requested_datetime, tz),
        "updated_datetime": fmt_datetime(r.updated_datetime, tz),
        "expected_datetime": fmt_datetime(r.expected_datetime, tz),
        "address": r.address_string,
        "address_id": r.address_id,
        "zipcode": r.zipcode,
        "lat": r.lat,
        "long": r.long,
        "media_url": r.media_url,
    }
    if extensions:
        doc["extended_attributes"] = {
            "channel": r.channel,
            "detailed_status": r.detailed_status,
            "duplicate_of": str(r.duplicate_of) if r.duplicate_of else None,
            "closure_reason": r.closure_reason,
            "first_contact_resolution": r.first_contact_resolution,
            "department_code": r.department_code,
            "closed_datetime": fmt_datetime(r.closed_datetime, tz),
            "legacy_id": r.legacy_id,
            # issue 21: the area in each layer (None: outside every area), as Chicago carries its ward
            "areas": dict(sorted((area_codes or {}).items())),
            "outside_areas": sorted(layer for layer, code in (area_codes or {}).items() if code is None),
        }
        doc["notes"] = [
            {"datetime": fmt_datetime(n.at, tz), "type": n.kind, "status": n.status,
             "author": actors.public_author(n.author, n.author_kind),
             "description": n.text}
            for n in notes or []
        ]
    return doc
