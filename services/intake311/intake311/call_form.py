"""The call-taker's form, built from the catalog's service definition: one field per attribute by
datatype, the caller's contact and the place, the promise read out before filing, and the request's
own checks (``open311.validate_new_request``, the same rules as POST /requests) turned into words
beside the field they are about. Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from intake311.open311 import NewRequest, params_from, validate_new_request
from intake311.service import UNIT_WORDS, ServiceEntry

# The caller and the place, in the order a call-taker asks for them: (name, label, widget)
BASE_FIELDS = (
    ("address_string", "Address or nearest intersection", "string"),
    ("description", "What the caller reports", "text"),
    ("first_name", "Caller's first name", "string"),
    ("last_name", "Caller's last name", "string"),
    ("phone", "Caller's phone number", "tel"),
    ("email", "Caller's email", "email"),
)
BASE_NAMES = tuple(name for name, _, _ in BASE_FIELDS)
# Errors of validate_new_request that open with no field name: the field they belong beside.
_LEADING = {"a location is required": "address_string", "lat and long": "address_string", "lat ": "address_string",
            "long ": "address_string", "service_code": "service_code"}
_ATTRIBUTE = re.compile(r"^attribute\[([^\]]+)\]")


@dataclass
class Field:
    name: str  # the form's name: "phone", "attribute[SIZE]", "attribute[MATERIAL][]"
    id: str
    label: str
    widget: str  # string, text, number, datetime, singlevaluelist, multivaluelist, tel, email
    required: bool = False
    hint: str | None = None
    choices: list[tuple[str, str]] = field(default_factory=list)  # (key, name)
    value: str = ""
    values: list[str] = field(default_factory=list)  # a multivaluelist's ticked keys
    error: str | None = None


def fields_for(entry: ServiceEntry, submitted: Mapping[str, list[str]] | None = None,
               errors: Mapping[str, str] | None = None) -> list[Field]:
    """The form's fields for a service (the attributes in their order, then the caller's), filled
    with what was submitted and each field's error."""
    submitted, errors = submitted or {}, errors or {}
    out: list[Field] = []
    for a in sorted(entry.attributes, key=lambda x: (x.get("order") or 0, x["code"])):
        if not a.get("variable", True):
            continue
        code, datatype = a["code"], a["datatype"]
        name = f"attribute[{code}]" + ("[]" if datatype == "multivaluelist" else "")
        given = submitted.get(name, [])
        out.append(Field(
            name=name, id=f"attr-{code.lower()}", label=a.get("description") or code.replace("_", " ").capitalize(),
            widget=datatype, required=bool(a.get("required")), hint=a.get("datatype_description"),
            choices=[(str(v["key"]), str(v["name"])) for v in a.get("values") or []],
            value=given[0] if given else "", values=list(given), error=errors.get(code),
        ))
    for name, label, widget in BASE_FIELDS:
        given = submitted.get(name, [])
        out.append(Field(name=name, id=f"caller-{name.replace('_', '-')}", label=label, widget=widget,
                         required=name == "address_string", value=given[0] if given else "", error=errors.get(name)))
    return out


def promise_text(entry: ServiceEntry) -> str:
    """The service level as the call-taker reads it out: "We aim to resolve this within 3 business
    days (Streets Department)", and another level that an answer brings."""
    text = f"We aim to resolve this within {_level(entry.sla_amount, entry.sla_unit)} ({entry.agency})."
    names = {a["code"]: a for a in entry.attributes}
    for rule in entry.sla_rules:
        a = names.get(rule.get("attribute"), {})
        value = next((v["name"] for v in a.get("values") or [] if str(v["key"]) == str(rule.get("value"))),
                     rule.get("value"))
        question = a.get("description") or rule.get("attribute")
        text += f" Within {_level(rule['amount'], rule['unit'])} when the answer to “{question}” is “{value}”."
    return text


def _level(amount: float, unit: str) -> str:
    n = int(amount) if float(amount).is_integer() else amount
    words = UNIT_WORDS.get(unit, unit)
    return f"{n} {words[:-1] if n == 1 and words.endswith('s') else words}"


def form_pairs(entry: ServiceEntry, form: Mapping[str, list[str]]) -> list[tuple[str, str]]:
    """What a POST /requests would carry: the service, the caller's fields, the attributes (a
    multivaluelist as attribute[CODE][]); blank fields are left out, as the route treats them."""
    pairs: list[tuple[str, str]] = [("service_code", entry.service_code)]
    for name in BASE_NAMES:
        value = (form.get(name) or [""])[0].strip()
        if value:
            pairs.append((name, value))
    for a in entry.attributes:
        code = a["code"]
        if a["datatype"] == "multivaluelist":
            pairs += [(f"attribute[{code}][]", v) for v in form.get(f"attribute[{code}][]", []) if v]
        else:
            value = (form.get(f"attribute[{code}]") or [""])[0].strip()
            if value:
                pairs.append((f"attribute[{code}]", value))
    return pairs


def validate(entry: ServiceEntry, form: Mapping[str, list[str]], tz: ZoneInfo) -> tuple[NewRequest | None, dict[str, str]]:
    """The request, or the errors by field ("SIZE" for an attribute, "phone"...), "" for the rest."""
    data, errors = validate_new_request(params_from(form_pairs(entry, form)), entry, tz)
    return data, errors_by_field(description for _, description in errors)


def errors_by_field(descriptions: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for text in descriptions:
        where, words = _field_of(text)
        out[where] = f"{out[where]} {words}" if where in out else words
    return out


def _field_of(text: str) -> tuple[str, str]:
    m = _ATTRIBUTE.match(text)
    if m:
        return m.group(1), _sentence(text[m.end():])
    for name in BASE_NAMES:
        if text.startswith(name + " "):
            return name, _sentence(text[len(name):])
    for lead, name in _LEADING.items():
        if text.startswith(lead):
            return name, "Give the address (or the nearest intersection)." if name == "address_string" else text
    return "", text[:1].upper() + text[1:]


def _sentence(rest: str) -> str:
    """The check's words without the parameter's name, for beside a labelled field."""
    rest = rest.strip()
    if rest.startswith("is required"):
        return "This answer is required."
    if rest.startswith(":"):
        rest = rest[1:].strip()
        return rest[:1].upper() + rest[1:] + ("" if rest.endswith(".") else ".")
    return f"This {rest}" + ("" if rest.endswith(".") else ".")
