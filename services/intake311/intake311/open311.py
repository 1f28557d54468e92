"""Open311 GeoReport v2 on the wire, the way in: the city's vocabularies, the parameters of a
request and the validation of a new service request. Pure functions without I/O, unit-tested
directly. The documents going out are ``open311_documents``; GET /requests is ``open311_search``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from citystat_common.bounds import RANGE_TEXT, check_datetime

# the defaults of the city's vocabularies (intake311.config: INTAKE311_CHANNELS, INTAKE311_CLOSURE_REASONS)
CHANNELS = ("phone", "web", "mobile_app", "sms", "email", "walk_in", "frontline", "unknown", "other")
CLOSURE_REASONS = ("fixed", "duplicate", "not_city_responsibility", "no_further_action", "referred", "other")
DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
MAX_DESCRIPTION = 4000
MAX_RANGE = timedelta(days=90)

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

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
