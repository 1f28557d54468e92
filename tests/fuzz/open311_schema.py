"""What intake311's OpenAPI document does not say about its Open311 routes, added for the fuzzer.

The Open311 routes read their parameters from the raw query and body (so that every problem is an
Open311 error document, never a FastAPI 422), which leaves them undocumented: a fuzzer reading
the document alone would only ever vary ``fmt``. This adds each route's parameters, and the POST's
form-encoded and JSON bodies, as the routes read them (tests/intake311/test_intake311_fuzz.py
checks that every name the routes read is here).
"""

from __future__ import annotations

import copy
from typing import Any

TEXT = {"type": "string"}
NUMBER = {"type": "number"}
INTEGER = {"type": "integer"}
DATETIME = {"type": "string", "format": "date-time"}
TRUE_FALSE = {"type": "string", "enum": ["true", "false"]}

COMMON = {"jurisdiction_id": TEXT}
SEARCH = {
    "service_request_id": TEXT, "service_code": TEXT, "start_date": DATETIME, "end_date": DATETIME,
    "status": {"type": "string", "enum": ["open", "closed", "open,closed"]}, "page": INTEGER, "page_size": INTEGER,
    "updated_after": DATETIME, "updated_before": DATETIME, "agency_responsible": TEXT, "bbox": TEXT,
    "lat": NUMBER, "long": NUMBER, "radius": NUMBER, "extensions": TRUE_FALSE, "legacy_id": TEXT,
}
NEW_REQUEST = {
    "service_code": TEXT, "lat": NUMBER, "long": NUMBER, "address_string": TEXT, "address_id": TEXT, "zipcode": TEXT,
    "email": TEXT, "device_id": TEXT, "account_id": TEXT, "first_name": TEXT, "last_name": TEXT, "phone": TEXT,
    "description": TEXT, "media_url": TEXT, "channel": TEXT, "first_contact_resolution": TRUE_FALSE,
    "closure_reason": TEXT, "status_notes": TEXT, "jurisdiction_id": TEXT, "api_key": TEXT,
}
QUERY: dict[str, dict[str, Any]] = {  # route (without the /open311/v2 prefix) -> its query parameters
    "/discovery.{fmt}": {},
    "/services.{fmt}": {**COMMON, "extensions": TRUE_FALSE},
    "/services/{service_code}.{fmt}": COMMON,
    "/requests.{fmt}": {**COMMON, **SEARCH},  # GET; the POST's are below
    "/tokens/{token}.{fmt}": COMMON,
    "/requests/{service_request_id}.{fmt}": {**COMMON, "extensions": TRUE_FALSE},
}
POST_QUERY = {**COMMON, "api_key": TEXT}


def open311_names() -> set[str]:
    """Every parameter name this module documents."""
    return {n for q in QUERY.values() for n in q} | set(NEW_REQUEST) | set(POST_QUERY)


def _param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def patch_open311(doc: dict[str, Any], *, service_codes: list[str], attributes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``doc`` with the Open311 routes' parameters and bodies. ``service_codes``: codes that exist
    (mostly drawn, so that requests get past the lookup); ``attributes``: ``attribute[<code>]``
    fields of those services, with their schemas."""
    doc = copy.deepcopy(doc)
    body = {"type": "object", "properties": {
        **NEW_REQUEST, "service_code": {"anyOf": [{"enum": service_codes}, TEXT]}, **attributes,
    }, "required": ["service_code", "lat", "long"]}
    for path, ops in doc["paths"].items():
        route = path.removeprefix("/open311/v2")
        if route not in QUERY:
            continue
        for method, op in ops.items():
            for p in op.get("parameters", []):
                if p["name"] == "fmt":
                    p["schema"] = {"type": "string", "enum": ["json", "xml"]}
            query = POST_QUERY if method == "post" else QUERY[route]
            op["parameters"] = [*op.get("parameters", []), *(_param(n, s) for n, s in query.items())]
            if method == "post":
                op["requestBody"] = {"required": True, "content": {
                    "application/x-www-form-urlencoded": {"schema": body}, "application/json": {"schema": body},
                }}
    return doc
