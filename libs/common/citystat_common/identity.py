"""Who is calling: bearer tokens (JWT) from the city's OpenID Connect provider.

Machine clients keep API keys (citystat_common.auth); people sign in through the provider and
their tokens are verified here against its published keys (JWKS): signature, issuer, audience,
expiry and not-before with a small clock skew. Keys are cached; a token signed with a key id the
cache does not know triggers one refresh (rate-limited, so a flood of forged key ids cannot make
the service hammer the provider) -- that is how a rotated provider key is accepted.

Roles come from a configurable claim (``groups`` in Keycloak and Okta, ``roles`` in Entra ID)
mapped to CityStat scopes by `RoleMap`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

DEFAULT_ALGORITHMS = ("RS256", "ES256", "PS256")


class TokenRefused(Exception):
    """The bearer token is not acceptable; the message says why (safe to show the caller)."""


@dataclass(frozen=True)
class ProviderConfig:
    issuer: str  # e.g. http://127.0.0.1:8009 or https://login.microsoftonline.com/<tenant>/v2.0
    audience: str  # the client id CityStat is registered as
    leeway_seconds: int = 60
    refresh_min_interval: float = 30.0
    roles_claim: str = "groups"
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS


@dataclass(frozen=True)
class Identity:
    """A person the provider vouches for. `email` ties them to the directory's person."""

    subject: str
    email: str | None
    name: str | None
    roles: frozenset[str] = field(default_factory=frozenset)
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RoleMap:
    """Provider role or group name -> CityStat scopes, e.g. {"citystat-analysts": ["indicators:write"]}."""

    mapping: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def scopes(self, roles: Iterable[str]) -> frozenset[str]:
        return frozenset(s for r in roles for s in self.mapping.get(r, ()))


class ProviderKeys:
    """The provider's discovery document and JWKS, fetched lazily and refreshed on an unknown kid."""

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient | None = None):
        self.config = config
        self._client = client  # None: a client per fetch (fetches are rare: at start and on rotation)
        self._keys: KeySet | None = None
        self._jwks_uri: str | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def discovery(self) -> dict[str, Any]:
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        doc: dict[str, Any] = await self._get_json(url)
        return doc

    async def _get_json(self, url: str) -> Any:
        if self._client is not None:
            resp = await self._client.get(url, timeout=5.0)
        else:
            async with httpx.AsyncClient() as client:
                resp = await client.get(url, timeout=5.0)
        resp.raise_for_status()
        return resp.json()

    async def _refresh(self) -> KeySet:
        if self._jwks_uri is None:
            self._jwks_uri = str((await self.discovery())["jwks_uri"])
        self._keys = KeySet.import_key_set(await self._get_json(self._jwks_uri))
        self._fetched_at = time.monotonic()
        return self._keys

    async def key_set(self, kid: str | None, *, failed: KeySet | None = None) -> KeySet:
        """The cached keys; refreshed (at most once per refresh_min_interval) when the token names a
        kid the cache lacks, or when `failed` (the set a signature just failed against) is current:
        some providers put no kid in their tokens, so a failed signature is the only sign of rotation."""
        async with self._lock:
            if self._keys is None:
                return await self._refresh()
            unknown = kid is not None and not any(k.kid == kid for k in self._keys.keys)
            stale = time.monotonic() - self._fetched_at >= self.config.refresh_min_interval
            if (unknown or failed is self._keys) and stale:
                return await self._refresh()
            return self._keys


class TokenVerifier:
    def __init__(self, config: ProviderConfig, keys: ProviderKeys):
        self.config = config
        self.keys = keys

    async def verify(self, token: str, *, now: float | None = None) -> Identity:
        try:
            header = _header(token)
        except (JoseError, ValueError) as exc:
            raise TokenRefused("the bearer token is not a JWT") from exc
        kid = header.get("kid")
        decoded = None
        tried: KeySet | None = None
        for _ in range(2):  # the cached keys, then (if they fail and may be stale) the provider's current ones
            try:
                key_set = await self.keys.key_set(kid, failed=tried)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                raise ProviderUnreachable(f"the identity provider's keys could not be read: {exc}") from exc
            if key_set is tried:
                break
            try:
                decoded = jwt.decode(token, key_set, algorithms=list(self.config.algorithms))
                break
            except (JoseError, ValueError):
                tried = key_set
        if decoded is None:
            raise TokenRefused("the bearer token's signature is not the provider's")
        claims = decoded.claims
        registry = jwt.JWTClaimsRegistry(
            now=int(now) if now is not None else None,
            leeway=self.config.leeway_seconds,
            iss={"essential": True, "value": self.config.issuer.rstrip("/")},
            aud={"essential": True, "value": self.config.audience},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise TokenRefused(f"the bearer token is not valid here: {exc.description or exc.error}") from exc
        roles = claims.get(self.config.roles_claim) or []
        if isinstance(roles, str):
            roles = roles.split()
        return Identity(
            subject=str(claims["sub"]), email=(str(claims["email"]).lower() if claims.get("email") else None),
            name=claims.get("name"), roles=frozenset(str(r) for r in roles), claims=claims,
        )


class ProviderUnreachable(Exception):
    """The provider (or its JWKS) cannot be reached: a 503 for the caller, not their fault."""


def _header(token: str) -> dict[str, Any]:
    import base64
    import json

    head = token.split(".", 1)[0]
    head += "=" * (-len(head) % 4)
    value = json.loads(base64.urlsafe_b64decode(head))
    if not isinstance(value, dict):
        raise ValueError("JWT header is not an object")
    return value
