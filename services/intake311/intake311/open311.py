"""Open311 GeoReport v2 on the wire: documents in XML and JSON, spec error documents, and the
parsing and validation of parameters. Pure functions without I/O, unit-tested directly.

XML is written with ``xml.etree`` (never parsed here: input is form, query or JSON only).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

import orjson
from fastapi import Response

from citystat_common.bounds import RANGE_TEXT, check_datetime

XML_TYPE = "text/xml; charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"
FORMATS = ("xml", "json")

# the defaults of the city's vocabularies (intake311.config: INTAKE311_CHANNELS, INTAKE311_CLOSURE_REASONS)
CHANNELS = ("phone", "web", "mobile_app", "sms", "email", "walk_in", "frontline", "unknown", "other")
CLOSURE_REASONS = ("fixed", "duplicate", "not_city_responsibility", "no_further_action", "referred", "other")
DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
MAX_DESCRIPTION = 4000
MAX_RANGE = timedelta(days=90)

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
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


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


# --- parameters -------------------------------------------------------------------------------

_ATTR = re.compile(r"^attribute\[([^\[\]]{1,100})\](\[\])?$")


@dataclass
class Params:
    """Parameters from the query string and the body; an empty value counts as missing."""

    values: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, list[str]] = field(default_factory=dict)
    attribute_multi: set[str] = field(default_factory=set)
    invalid: set[str] = field(default_factory=set)  # given as a structure where a value is expected

    def get(self, name: str) -> str | None:
        v = self.values.get(name)
        return v if v else None

    def add(self, key: str, value: Any) -> None:
        if isinstance(value, bool):
            value = "true" if value else "false"
        if value is None:
            return
        if key == "attribute" and isinstance(value, Mapping):
            for code, v in value.items():
                if isinstance(v, list):
                    self.attribute_multi.add(str(code))
                    for item in v:
                        self._add_attr(str(code), item)
                else:
                    self._add_attr(str(code), v)
            return
        m = _ATTR.match(key)
        if m:
            if m.group(2):
                self.attribute_multi.add(m.group(1))
            if isinstance(value, list):
                for item in value:
                    self._add_attr(m.group(1), item)
            else:
                self._add_attr(m.group(1), value)
            return
        if isinstance(value, (list, dict)):
            self.invalid.add(key)
            return
        if not self.values.get(key):  # the first non-empty value wins
            self.values[key] = str(value).strip()

    def _add_attr(self, code: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool):
            value = "true" if value else "false"
        text = str(value).strip()
        if text:
            self.attributes.setdefault(code, []).append(text)
        else:
            self.attributes.setdefault(code, [])


def params_from(pairs: Iterable[tuple[str, Any]]) -> Params:
    p = Params()
    for k, v in pairs:
        p.add(k, v)
    return p


# --- validation of a new request ------------------------------------------------------------

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_PHONE = re.compile(r"^\+?[0-9 ().\-]{7,25}$")
_URL = re.compile(r"^https?://[^\s]{3,}$", re.IGNORECASE)

TEXT_LIMITS = {
    "description": MAX_DESCRIPTION,
    "address_string": 500,
    "address_id": 100,
    "first_name": 100,
    "last_name": 100,
    "device_id": 200,
    "account_id": 200,
    "email": 320,
    "phone": 40,
    "media_url": 2000,
    "zipcode": 20,
    "status_notes": 4000,
}


@dataclass
class NewRequest:
    service_code: str
    lat: float | None = None
    long: float | None = None
    address_string: str | None = None
    address_id: str | None = None
    zipcode: str | None = None
    description: str | None = None
    media_url: str | None = None
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    device_id: str | None = None
    account_id: str | None = None
    channel: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    first_contact_resolution: bool = False
    closure_reason: str | None = None
    status_notes: str | None = None


def parse_bool(value: str | None) -> bool | None:
    if value is None:
        return None
    v = value.lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise ValueError(value)


_DECIMAL = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$")


def parse_float(value: str) -> float:
    """A decimal number as written on a form: no nan, inf, 1_000 or spaces (Python's float takes them)."""
    if not _DECIMAL.match(value):
        raise ValueError(value)
    f = float(value)
    if not math.isfinite(f):
        raise ValueError(value)
    return f


def parse_datetime(value: str, tz: ZoneInfo) -> datetime:
    """ISO 8601 / W3C: a date, or a date and time; no offset means the city's time zone."""
    text = value.strip().replace(" ", "T", 1) if "T" not in value and len(value) > 10 else value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        d = date.fromisoformat(text)  # raises ValueError when not a date either
        dt = datetime.combine(d, time(0, 0))
    # before any zone arithmetic: year 1 or 9999 parses, then overflows when moved to UTC
    check_datetime(dt)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.astimezone(UTC)


def validate_new_request(params: Params, service: Any | None, tz: ZoneInfo, *, channels: Sequence[str] = CHANNELS,
                         closure_reasons: Sequence[str] = CLOSURE_REASONS) -> tuple[NewRequest | None, list[tuple[int, str]]]:
    """Every problem with a POST /requests at once. ``service`` is the catalog entry (or None when
    unknown); its ``attributes`` are the definitions to check ``attribute[...]`` against.
    ``channels``, ``closure_reasons``: the city's vocabularies (INTAKE311_CHANNELS, _CLOSURE_REASONS)."""
    errors: list[tuple[int, str]] = [(400, f"{name} must be a single value") for name in sorted(params.invalid)]
    code = params.get("service_code")
    if code is None:
        errors.append((400, "service_code is required"))
    elif service is None:
        errors.append((404, f"service_code {code!r} was not found"))
    for name, limit in TEXT_LIMITS.items():
        v = params.get(name)
        if v is None:
            continue
        if len(v) > limit:
            errors.append((400, f"{name} must be at most {limit} characters (got {len(v)})"))
        elif _CONTROL.search(v.replace("\n", "").replace("\r", "").replace("\t", "")):
            errors.append((400, f"{name} contains control characters"))
    req = NewRequest(service_code=code or "")
    lat_s, long_s = params.get("lat"), params.get("long")
    if (lat_s is None) != (long_s is None):
        errors.append((400, "lat and long must be given together"))
    elif lat_s is not None and long_s is not None:
        try:
            req.lat = parse_float(lat_s)
            if not -90 <= req.lat <= 90:
                errors.append((400, f"lat must be between -90 and 90 (WGS84), got {lat_s}"))
        except ValueError:
            errors.append((400, f"lat must be a number (WGS84 decimal degrees), got {lat_s!r}"))
        try:
            req.long = parse_float(long_s)
            if not -180 <= req.long <= 180:
                errors.append((400, f"long must be between -180 and 180 (WGS84), got {long_s}"))
        except ValueError:
            errors.append((400, f"long must be a number (WGS84 decimal degrees), got {long_s!r}"))
    for name in ("address_string", "address_id", "zipcode", "description", "first_name", "last_name",
                 "device_id", "account_id", "status_notes"):
        setattr(req, name, params.get(name))
    if lat_s is None and long_s is None and not req.address_string and not req.address_id:
        errors.append((400, "a location is required: lat and long, address_string or address_id"))
    email = params.get("email")
    if email is not None:
        if _EMAIL.match(email):
            req.email = email
        else:
            errors.append((400, "email is not a valid email address"))
    phone = params.get("phone")
    if phone is not None:
        if _PHONE.match(phone):
            req.phone = phone
        else:
            errors.append((400, "phone must be a phone number: digits, spaces, + ( ) . -"))
    media = params.get("media_url")
    if media is not None:
        if _URL.match(media):
            req.media_url = media
        else:
            errors.append((400, "media_url must be an http or https URL"))
    channel = params.get("channel")
    if channel is not None:
        if channel.lower() in channels:
            req.channel = channel.lower()
        else:
            errors.append((400, f"channel must be one of {', '.join(channels)}"))
    try:
        req.first_contact_resolution = bool(parse_bool(params.get("first_contact_resolution")))
    except ValueError:
        errors.append((400, "first_contact_resolution must be true or false"))
    reason = params.get("closure_reason")
    if reason is not None:
        if reason not in closure_reasons:
            errors.append((400, f"closure_reason must be one of {', '.join(closure_reasons)}"))
        elif not req.first_contact_resolution:
            errors.append((400, "closure_reason is only accepted with first_contact_resolution=true"))
        else:
            req.closure_reason = reason
    if service is not None:
        req.attributes, attr_errors = validate_attributes(params, service.attributes or [], tz)
        errors += attr_errors
    return (None if errors else req), errors


def validate_attributes(params: Params, definitions: list[dict[str, Any]], tz: ZoneInfo,
                        now: datetime | None = None) -> tuple[dict[str, Any], list[tuple[int, str]]]:
    errors: list[tuple[int, str]] = []
    out: dict[str, Any] = {}
    by_code = {d["code"]: d for d in definitions}
    for code in params.attributes:
        d = by_code.get(code)
        if d is None or not d.get("variable", True):
            errors.append((400, f"attribute[{code}] is not an attribute of this service"))
    for d in sorted(definitions, key=lambda x: x.get("order") or 0):
        if not d.get("variable", True):
            continue
        code, datatype = d["code"], d["datatype"]
        values = params.attributes.get(code) or []
        label = f"attribute[{code}]"
        if not values:
            if d.get("required"):
                errors.append((400, f"{label} is required: {d.get('description') or code}"))
            continue
        if datatype != "multivaluelist" and len(values) > 1:
            errors.append((400, f"{label} takes a single value"))
            continue
        allowed = {str(v["key"]) for v in d.get("values") or []}
        if datatype == "multivaluelist":
            bad = [v for v in values if v not in allowed]
            if bad:
                errors.append((400, f"{label}: {', '.join(repr(b) for b in bad)} not in the allowed values "
                                    f"({', '.join(sorted(allowed))})"))
            else:
                out[code] = list(dict.fromkeys(values))
            continue
        value = values[0]
        if datatype == "singlevaluelist":
            if value not in allowed:
                errors.append((400, f"{label}: {value!r} is not one of the allowed values ({', '.join(sorted(allowed))})"))
            else:
                out[code] = value
        elif datatype == "number":
            try:
                n = parse_float(value)
            except ValueError:
                errors.append((400, f"{label} must be a number, got {value[:50]!r}"))
                continue
            low, high = attribute_number_bounds(d)
            if not low <= n <= high:
                errors.append((400, f"{label} must be between {low:g} and {high:g}, got {value[:50]}"))
            else:
                out[code] = int(n) if n.is_integer() else n
        elif datatype == "datetime":
            try:
                moment = parse_datetime(value, tz)
            except ValueError:
                errors.append((400, f"{label} must be an ISO 8601 date and time {RANGE_TEXT}, got {value[:50]!r}"))
                continue
            problem = attribute_datetime_problem(d, moment, now or datetime.now(UTC))
            if problem:
                errors.append((400, f"{label} {problem}"))
            else:
                out[code] = moment.isoformat()
        else:  # string, text
            limit = 4000 if datatype == "text" else 500
            if len(value) > limit:
                errors.append((400, f"{label} must be at most {limit} characters"))
            elif _CONTROL.search(value.replace("\n", "").replace("\r", "").replace("\t", "")):
                errors.append((400, f"{label} contains control characters"))
            else:
                out[code] = value
    return out, errors


NUMBER_LIMIT = 1e12  # as schemas.NUMBER_LIMIT: the default bounds of a number attribute


def attribute_number_bounds(definition: Mapping[str, Any]) -> tuple[float, float]:
    low, high = definition.get("minimum"), definition.get("maximum")
    return (-NUMBER_LIMIT if low is None else float(low)), (NUMBER_LIMIT if high is None else float(high))


def attribute_datetime_problem(definition: Mapping[str, Any], moment: datetime, now: datetime) -> str | None:
    """Why a datetime attribute's value is refused by its own window around ``now``, or None."""
    before, after = definition.get("days_before"), definition.get("days_after")
    if before is not None and moment < now - timedelta(days=before):
        return f"must be at most {before} days before now"
    if after is not None and moment > now + timedelta(days=after):
        return f"must be at most {after} days after now"
    return None


# --- GET /requests -----------------------------------------------------------------------------


@dataclass
class Search:
    ids: list[int] | None = None
    unknown_ids: bool = False
    legacy_id: str | None = None  # the previous system's number (an imported request), exactly
    service_codes: list[str] | None = None
    start: datetime | None = None
    end: datetime | None = None
    statuses: list[str] | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    agency: str | None = None
    bbox: tuple[float, float, float, float] | None = None  # min_long, min_lat, max_long, max_lat
    near: tuple[float, float, float] | None = None  # lat, long, radius in metres
    page: int = 1
    page_size: int = 1000
    extensions: bool = False
    areas: dict[str, list[str]] | None = None  # area=LAYER:CODE (intake311.areas.parse_area_filter)


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_search(params: Params, now: datetime, tz: ZoneInfo, max_results: int) -> tuple[Search, list[tuple[int, str]]]:
    errors: list[tuple[int, str]] = []
    s = Search(page_size=max_results)
    try:
        s.extensions = bool(parse_bool(params.get("extensions")))
    except ValueError:
        errors.append((400, "extensions must be true or false"))
    for name in ("page", "page_size"):
        v = params.get(name)
        if v is None:
            continue
        try:
            n = int(v)
        except ValueError:
            errors.append((400, f"{name} must be a whole number"))
            continue
        upper = 1_000_000 if name == "page" else max_results
        if not 1 <= n <= upper:
            errors.append((400, f"{name} must be between 1 and {upper}"))
        else:
            setattr(s, name, n)
    ids = params.get("service_request_id")
    if ids is not None:
        # The spec: service_request_id overrides every other parameter.
        parsed = []
        for part in _csv(ids):
            if part.isascii() and part.isdigit() and len(part) < 18:
                parsed.append(int(part))
            else:
                s.unknown_ids = True
        s.ids = parsed
        return s, errors
    legacy = params.get("legacy_id")
    if legacy is not None:
        # an extension, like service_request_id: one number, as the previous system wrote it; it
        # overrides every other parameter
        if not legacy or len(legacy) > 100:
            errors.append((400, "legacy_id must be 1-100 characters"))
        s.legacy_id = legacy
        return s, errors
    codes = params.get("service_code")
    if codes is not None:
        s.service_codes = _csv(codes)
    status = params.get("status")
    if status is not None:
        s.statuses = [x.lower() for x in _csv(status)]
        bad = [x for x in s.statuses if x not in ("open", "closed")]
        if bad or not s.statuses:
            errors.append((400, "status must be open, closed, or open,closed"))
    times: dict[str, datetime] = {}
    for name in ("start_date", "end_date", "updated_after", "updated_before"):
        v = params.get(name)
        if v is None:
            continue
        try:
            times[name] = parse_datetime(v, tz)
        except ValueError:
            errors.append((400, f"{name} must be an ISO 8601 date and time {RANGE_TEXT}, e.g. 2026-11-01T00:00:00Z"))
    s.updated_after, s.updated_before = times.get("updated_after"), times.get("updated_before")
    start, end = times.get("start_date"), times.get("end_date")
    if start and end:
        if end < start:
            errors.append((400, "end_date must not be before start_date"))
        elif end - start > MAX_RANGE:
            errors.append((400, "the date range may not span more than 90 days"))
    elif start:
        end = start + MAX_RANGE
    elif end:
        start = end - MAX_RANGE
    elif not ("start_date" in params.values or "end_date" in params.values) and (s.updated_after or s.updated_before):
        pass  # incremental sync by update time: no requested-date window
    else:
        start, end = now - MAX_RANGE, None
    s.start, s.end = start, end
    agency = params.get("agency_responsible")
    if agency is not None:
        s.agency = agency
    bbox = params.get("bbox")
    if bbox is not None:
        try:
            parts = [parse_float(x) for x in bbox.split(",")]
            if len(parts) != 4:
                raise ValueError
            min_long, min_lat, max_long, max_lat = parts
            if not (-180 <= min_long <= max_long <= 180 and -90 <= min_lat <= max_lat <= 90):
                raise ValueError
            s.bbox = (min_long, min_lat, max_long, max_lat)
        except ValueError:
            errors.append((400, "bbox must be min_long,min_lat,max_long,max_lat in WGS84 degrees"))
    lat, lng, radius = params.get("lat"), params.get("long"), params.get("radius")
    if lat is not None or lng is not None or radius is not None:
        try:
            la, lo = parse_float(lat or ""), parse_float(lng or "")
            r = parse_float(radius) if radius is not None else 500.0
            if not (-90 <= la <= 90 and -180 <= lo <= 180 and 0 < r <= 50_000):
                raise ValueError
            s.near = (la, lo, r)
        except ValueError:
            errors.append((400, "lat, long and radius (metres, up to 50000) must be valid together"))
    return s, errors


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    r = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(min(1.0, math.sqrt(a)))


def box_around(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_long, max_long) enclosing a circle: an index-friendly pre-filter."""
    dlat = radius_m / 111_320.0
    dlon = radius_m / max(1.0, 111_320.0 * math.cos(math.radians(lat)))
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon
