"""The settings and the set-up that let people in: the city's OpenID provider (bearer tokens for the
APIs, sign-in for the pages) and its SMTP relay (mail to the people work is routed to).

Every service's settings include `PeopleSettings` (shared, unprefixed variables: one provider and
one relay for the whole city, except `<SVC>_PUBLIC_URL`, where the browser reaches that service).
`build_app` calls `install_people(app, settings)`: nothing is turned on unless it is configured.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings

from citystat_common.auth import DEFAULT_ROLE_MAP, SCOPES
from citystat_common.mail import SmtpConfig

PLACEHOLDERS = {"change-me", "changeme", "secret", "password", "default", "dev"}


def _shared(name: str) -> Any:
    return AliasChoices(name, name.upper())


class PeopleSettings(BaseSettings):
    # The provider: issuer URL as its discovery document names it, and CityStat's client there.
    identity_issuer: str | None = Field(None, validation_alias=_shared("identity_issuer"))
    identity_client_id: str = Field("citystat", validation_alias=_shared("identity_client_id"))
    identity_client_secret: str | None = Field(None, validation_alias=_shared("identity_client_secret"))
    # The claim that lists a person's groups or roles ("groups": Keycloak, Okta; "roles": Entra ID).
    identity_roles_claim: str = Field("groups", validation_alias=_shared("identity_roles_claim"))
    # JSON {"provider group": ["scope", ...]}; the demo provider's groups when unset.
    identity_role_map: dict[str, list[str]] | None = Field(None, validation_alias=_shared("identity_role_map"))
    identity_leeway_seconds: int = Field(60, ge=0, le=600, validation_alias=_shared("identity_leeway_seconds"))
    # Signs the pages' session cookie; pages need sign-in only when this and the client secret are set.
    session_secret: str | None = Field(None, validation_alias=_shared("session_secret"))
    session_max_age_seconds: int = Field(8 * 3600, ge=300, le=7 * 86400, validation_alias=_shared("session_max_age_seconds"))
    # Where a browser reaches this service (links in mail, the sign-in callback); http://host:port if unset.
    public_url: str | None = None

    smtp_host: str | None = Field(None, validation_alias=_shared("smtp_host"))  # no mail when unset
    smtp_port: int = Field(25, ge=1, le=65535, validation_alias=_shared("smtp_port"))
    smtp_tls: Literal["none", "starttls", "tls"] = Field("none", validation_alias=_shared("smtp_tls"))
    smtp_username: str | None = Field(None, validation_alias=_shared("smtp_username"))
    smtp_password: str | None = Field(None, validation_alias=_shared("smtp_password"))
    mail_from: str = Field("CityStat <citystat@localhost>", validation_alias=_shared("mail_from"))

    @field_validator("identity_issuer", "identity_client_secret", "session_secret", "public_url", "smtp_host",
                     "smtp_username", "smtp_password", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: Any) -> Any:
        # compose passes `${VAR:-}` as an empty string: that means "not configured", not "blank"
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("identity_role_map", mode="before")
    @classmethod
    def _parse_map(cls, v: Any) -> Any:
        if isinstance(v, str):
            return json.loads(v) if v.strip() else None
        return v

    @field_validator("identity_role_map")
    @classmethod
    def _known_scopes(cls, v: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        unknown = sorted({s for scopes in (v or {}).values() for s in scopes} - set(SCOPES))
        if unknown:
            raise ValueError(f"identity_role_map names unknown scopes {unknown}")
        return v

    @model_validator(mode="after")
    def _check_secrets(self) -> PeopleSettings:
        for name in ("session_secret", "identity_client_secret"):
            value = getattr(self, name)
            if value is not None and (value.lower() in PLACEHOLDERS or len(value) < 16):
                raise ValueError(f"{name} must be a real secret of at least 16 characters, not a placeholder")
        return self

    def browser_url(self, host: str, port: int) -> str:
        return (self.public_url or f"http://{host}:{port}").rstrip("/")

    @property
    def pages_sign_in(self) -> bool:
        return bool(self.identity_issuer and self.session_secret and self.identity_client_secret)

    def smtp(self) -> SmtpConfig | None:
        if not self.smtp_host:
            return None
        return SmtpConfig(host=self.smtp_host, port=self.smtp_port, tls=self.smtp_tls, username=self.smtp_username,
                          password=self.smtp_password, sender=self.mail_from)


def install_people(app: FastAPI, settings: Any) -> None:
    """Bearer tokens (when a provider is configured) and page sign-in (when its secrets are too)."""
    from citystat_common.identity import ProviderConfig, ProviderKeys, TokenVerifier
    from citystat_common.signin import SignInConfig, install_signin

    app.state.role_map = settings.identity_role_map or DEFAULT_ROLE_MAP
    app.state.token_verifier = None
    if not settings.identity_issuer:
        return
    config = ProviderConfig(issuer=settings.identity_issuer, audience=settings.identity_client_id,
                            leeway_seconds=settings.identity_leeway_seconds, roles_claim=settings.identity_roles_claim)
    app.state.token_verifier = TokenVerifier(config, ProviderKeys(config))
    if settings.pages_sign_in:
        install_signin(app, SignInConfig(
            issuer=settings.identity_issuer, client_id=settings.identity_client_id,
            client_secret=settings.identity_client_secret, session_secret=settings.session_secret,
            public_url=settings.browser_url(settings.host, settings.port), roles_claim=settings.identity_roles_claim,
            session_max_age=settings.session_max_age_seconds,
        ))
