"""API keys with scopes, stored hashed.

A key file (``API_KEYS_FILE``) or inline settings list keys as
``{"name", "sha256" | "key", "scopes": [...], "channel"}``; only the SHA-256 of a key
is kept in memory. ``admin`` implies every scope. 401 without a key, 403 with a key
that lacks the scope; reads of non-personal data need no key at all.

311 has two write scopes: ``311:submit`` files a request (and the reporter's feedback on it), all a
resident-facing key (web, mobile app) carries; ``311:write`` acts on any request (acknowledge,
close, transfer, merge), staff only, and implies ``311:submit``. A key's ``channel`` is the channel
its requests are recorded under (intake311 refuses another).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

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


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    channel: str | None = None

    def has(self, scope: str) -> bool:
        return ("admin" in self.scopes or scope in self.scopes
                or any(scope in IMPLIED.get(held, ()) for held in self.scopes))


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
                name=entry.get("name", "unnamed"), scopes=frozenset(entry.get("scopes", [])), channel=entry.get("channel")
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


def optional_principal(request: Request) -> Principal | None:
    raw = request.headers.get("x-api-key")
    principal = _keystore(request).authenticate(raw)
    if raw and principal is None:
        raise HTTPException(401, "the API key is not valid", headers={"WWW-Authenticate": "ApiKey"})
    return principal


def require_scope(scope: str) -> Any:
    def dependency(request: Request) -> Principal:
        principal = optional_principal(request)
        if principal is None:
            raise HTTPException(401, "an X-API-Key header is required", headers={"WWW-Authenticate": "ApiKey"})
        if not principal.has(scope):
            raise HTTPException(403, f"this API key lacks the {scope!r} scope")
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return Depends(dependency)


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


def can_see_personal_data(principal: Principal | None) -> bool:
    return principal is not None and principal.has("staff")
