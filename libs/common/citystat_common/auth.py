"""API keys with scopes, stored hashed.

A key file (``API_KEYS_FILE``) or inline settings list keys as
``{"name", "sha256" | "key", "scopes": [...], "channel"}``; only the SHA-256 of a key
is kept in memory. ``admin`` implies every scope. 401 without a key, 403 with a key
that lacks the scope; reads of non-personal data need no key at all.

311 has two write scopes: ``311:submit`` files a request (and the reporter's feedback on it), all a
resident-facing key (web, mobile app) carries; ``311:write`` acts on any request (acknowledge,
close, transfer, merge), staff only, and implies ``311:submit``. A key's ``channel`` is the channel
its requests are recorded under (intake311 refuses another).

People are principals too. A person calls the APIs with ``Authorization: Bearer <JWT>`` from the
city's OpenID provider (citystat_common.identity) or uses the pages with a session
(citystat_common.signin); their scopes come from the provider's groups through the role map
(``IDENTITY_ROLE_MAP``), and their departments from groups named ``citystat-dept-<CODE>``. Every
write records ``principal.actor()``: a person's name and email, or a machine key's name.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request

SCOPES = (
    "admin",
    "staff",
    "directory:write",
    "311:submit",
    "311:write",
    "311:admin",
    "indicators:write",
    "escalation:write",
)

# Demo roles written by `make run` to var/demo-keys.json as {"role": "key"}.
DEMO_ROLES: dict[str, list[str]] = {
    "admin": ["admin"],
    "staff": ["staff"],
    "directory": ["directory:write"],
    "call_center": ["311:submit", "311:write"],
    "web": ["311:submit"],
    "mobile_app": ["311:submit"],
    "analyst": ["indicators:write", "staff"],
    "ops": ["escalation:write", "staff"],
    "public": [],
}
DEMO_CHANNELS = {"call_center": "phone", "web": "web", "mobile_app": "mobile_app"}
# A scope that grants others with it: staff who may act on any request may also file one.
IMPLIED: dict[str, frozenset[str]] = {"311:write": frozenset({"311:submit"})}


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# Provider group -> scopes for people, the demo provider's groups by default (citystat_common.devidp).
# Which department's tickets or requests a person may act on is decided by each service from the
# directory (the Senior Team Model) and the person's department groups, not by these scopes alone.
DEFAULT_ROLE_MAP: dict[str, list[str]] = {
    "citystat-staff": ["staff"],
    "citystat-admin": ["admin"],
    "citystat-performance_office": ["staff", "indicators:write", "escalation:write", "directory:write"],
    "citystat-analyst": ["staff", "indicators:write"],
    "citystat-311_staff": ["staff", "311:write"],
    "citystat-stat_partner": ["staff", "indicators:write", "escalation:write"],
    **{f"citystat-{role}": ["staff", "escalation:write"] for role in (
        "department_head", "oit_partner", "hr_partner", "budget_partner", "customer_service_officer",
        "deputy_mayor", "managing_director")},
}
DEPARTMENT_GROUP_PREFIX = "citystat-dept-"
Via = Literal["key", "bearer", "session"]


@dataclass(frozen=True)
class Actor:
    """Who made a change, as every service records it: a person by name and email, or a machine key."""

    kind: Literal["person", "key"]
    name: str
    email: str | None = None
    via: Via = "key"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "email": self.email, "via": self.via}

    @property
    def label(self) -> str:
        return self.name if self.kind == "person" else f"key {self.name}"


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    channel: str | None = None
    kind: Literal["person", "key"] = "key"
    email: str | None = None  # a person's email, lower case: the directory's person with that email
    via: Via = "key"
    roles: frozenset[str] = field(default_factory=frozenset)  # the provider's groups, for a person
    departments: frozenset[str] = field(default_factory=frozenset)  # codes; empty for a key: any

    def has(self, scope: str) -> bool:
        return ("admin" in self.scopes or scope in self.scopes
                or any(scope in IMPLIED.get(held, ()) for held in self.scopes))

    @property
    def is_person(self) -> bool:
        return self.kind == "person"

    def actor(self) -> Actor:
        return Actor(kind=self.kind, name=self.name, email=self.email, via=self.via)


def person_principal(*, name: str | None, email: str | None, subject: str, roles: Iterable[str], via: Via,
                     role_map: Mapping[str, Iterable[str]] | None = None) -> Principal:
    groups = frozenset(roles)
    mapping = DEFAULT_ROLE_MAP if role_map is None else role_map
    scopes = frozenset(s for g in groups for s in mapping.get(g, ()))
    departments = frozenset(g[len(DEPARTMENT_GROUP_PREFIX):].upper() for g in groups
                            if g.startswith(DEPARTMENT_GROUP_PREFIX))
    return Principal(name=name or email or subject, scopes=scopes, kind="person", email=email, via=via,
                     roles=groups, departments=departments)


class KeyStore:
    def __init__(self, entries: list[dict[str, Any]]):
        self._by_hash: dict[str, Principal] = {}
        for entry in entries:
            digest = (entry.get("sha256") or (hash_key(entry["key"]) if entry.get("key") else "")).lower()
            if not digest:
                raise ValueError(f"api key entry {entry.get('name')!r} has neither sha256 nor key")
            unknown = set(entry.get("scopes", [])) - set(SCOPES)
            if unknown:
                raise ValueError(f"api key {entry.get('name')!r} has unknown scopes {sorted(unknown)}")
            self._by_hash[digest] = Principal(
                name=entry.get("name", "unnamed"), scopes=frozenset(entry.get("scopes", [])), channel=entry.get("channel"),
                departments=frozenset(str(d).upper() for d in entry.get("departments") or ()),
            )

    @classmethod
    def from_settings(cls, keys_file: Path | None, inline: list[dict[str, Any]]) -> KeyStore:
        entries = list(inline)
        if keys_file:
            doc = json.loads(Path(keys_file).read_text())
            entries.extend(doc["keys"] if isinstance(doc, dict) else doc)
        return cls(entries)

    def authenticate(self, raw: str | None) -> Principal | None:
        if not raw:
            return None
        # A lookup by digest, not a loop of compare_digest over every key: the lookup's timing can
        # tell a caller only about the SHA-256 of their own guess, never about a stored key.
        return self._by_hash.get(hash_key(raw))


def generate_demo_keys() -> tuple[dict[str, str], dict[str, Any]]:
    """Fresh random keys per demo role: the plain ones for people, the hashed file for services."""
    plain = {role: f"cs_{role}_{secrets.token_urlsafe(18)}" for role in DEMO_ROLES}
    hashed = {
        "keys": [
            {"name": role, "sha256": hash_key(key), "scopes": DEMO_ROLES[role], "channel": DEMO_CHANNELS.get(role)}
            for role, key in plain.items()
        ]
    }
    return plain, hashed


def _keystore(request: Request) -> KeyStore:
    return request.app.state.keystore


async def optional_principal(request: Request) -> Principal | None:
    """The caller: an API key, else a bearer token from the city's provider (when the service is set
    up with one), else the signed-in person of a page session; None for an anonymous read."""
    raw = request.headers.get("x-api-key")
    if raw:
        principal = _keystore(request).authenticate(raw)
        if principal is None:
            raise HTTPException(401, "the API key is not valid", headers={"WWW-Authenticate": "ApiKey"})
        return principal
    authorization = request.headers.get("authorization") or ""
    if authorization[:7].lower() == "bearer ":
        return await _bearer_principal(request, authorization[7:].strip())
    return _session_principal(request)


async def _bearer_principal(request: Request, token: str) -> Principal:
    from citystat_common.identity import ProviderUnreachable, TokenRefused

    verifier = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        raise HTTPException(401, "this service does not accept bearer tokens; use X-API-Key",
                            headers={"WWW-Authenticate": "ApiKey"})
    try:
        who = await verifier.verify(token)
    except TokenRefused as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from exc
    except ProviderUnreachable as exc:
        raise HTTPException(503, "the city's identity provider cannot be reached to check the token") from exc
    return person_principal(name=who.name, email=who.email, subject=who.subject, roles=who.roles, via="bearer",
                            role_map=getattr(request.app.state, "role_map", None))


def _session_principal(request: Request) -> Principal | None:
    from citystat_common.signin import current_person

    person = current_person(request)
    if person is None:
        return None
    return person_principal(name=person.name, email=person.email, subject=person.subject, roles=person.roles,
                            via="session", role_map=getattr(request.app.state, "role_map", None))


def require_scope(scope: str) -> Any:
    async def dependency(request: Request) -> Principal:
        principal = await optional_principal(request)
        if principal is None:
            raise HTTPException(401, "an X-API-Key header or a bearer token is required",
                                headers={"WWW-Authenticate": "ApiKey"})
        if not principal.has(scope):
            who = "you lack" if principal.is_person else "this API key lacks"
            raise HTTPException(403, f"{who} the {scope!r} scope")
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return Depends(dependency)


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


def can_see_personal_data(principal: Principal | None) -> bool:
    return principal is not None and principal.has("staff")
