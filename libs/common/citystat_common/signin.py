"""Signing people in to the pages: OpenID Connect authorization code with PKCE (authlib's Starlette
client), a session cookie, CSRF tokens on every form, sign-out, and a plain page when the city's
provider cannot be reached.

A service's pages call `install_signin(app, config)` once in the app factory; a page handler takes
`person: SignedIn` (redirects to the provider when nobody is signed in) or `MaybeSignedIn`, and a
form handler calls `check_csrf(request, form_token)` before it changes anything. The session
keeps only who the person is (subject, email, name, roles) and the CSRF token, signed with
`session_secret`; nothing else about them is stored in the browser.
"""

from __future__ import annotations

import hmac
import html
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.middleware.sessions import SessionMiddleware

SESSION_COOKIE = "citystat_session"
_PERSON, _CSRF = "person", "csrf"


@dataclass(frozen=True)
class SignInConfig:
    issuer: str
    client_id: str
    client_secret: str
    session_secret: str
    public_url: str  # where the browser reaches this service, e.g. http://127.0.0.1:8003
    roles_claim: str = "groups"
    session_max_age: int = 8 * 3600
    scope: str = "openid email profile"

    @property
    def secure_cookie(self) -> bool:
        return self.public_url.startswith("https://")


@dataclass(frozen=True)
class SessionPerson:
    subject: str
    email: str | None
    name: str | None
    roles: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.name or self.email or self.subject


class SignInRequired(Exception):
    def __init__(self, next_path: str):
        self.next_path = next_path


def _safe_next(value: str | None) -> str:
    # Only a path on this site: "//evil.example" and "https://..." would be open redirects.
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def current_person(request: Request) -> SessionPerson | None:
    data = request.session.get(_PERSON) if "session" in request.scope else None
    if not isinstance(data, dict) or not data.get("subject"):
        return None
    return SessionPerson(subject=data["subject"], email=data.get("email"), name=data.get("name"),
                         roles=tuple(data.get("roles") or ()))


def require_person(request: Request) -> SessionPerson:
    person = current_person(request)
    if person is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return person


async def _signed_in(request: Request) -> SessionPerson:  # Depends twins: on the loop, not in the thread pool
    return require_person(request)


async def _maybe_signed_in(request: Request) -> SessionPerson | None:
    return current_person(request)


SignedIn = Annotated[SessionPerson, Depends(_signed_in)]
MaybeSignedIn = Annotated[SessionPerson | None, Depends(_maybe_signed_in)]


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use): put it in a hidden `csrf` field of every form."""
    token = request.session.get(_CSRF)
    if not token:
        token = request.session[_CSRF] = secrets.token_urlsafe(32)
    return str(token)


def check_csrf(request: Request, submitted: str | None) -> None:
    expected = request.session.get(_CSRF) if "session" in request.scope else None
    if not expected or not submitted or not hmac.compare_digest(str(expected), submitted):
        raise HTTPException(403, "the form's security token is missing or stale: reload the page and try again")


def _page(title: str, text: str, status: int) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><main><h1>{html.escape(title)}</h1><p>{text}</p></main></body></html>",
        status_code=status,
    )


def install_signin(app: FastAPI, config: SignInConfig) -> None:
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.starlette_client import OAuth

    oauth = OAuth()
    oauth.register(
        "city", client_id=config.client_id, client_secret=config.client_secret,
        server_metadata_url=config.issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": config.scope, "code_challenge_method": "S256"},
    )
    client: Any = oauth.create_client("city")
    app.add_middleware(
        SessionMiddleware, secret_key=config.session_secret, session_cookie=SESSION_COOKIE,
        max_age=config.session_max_age, same_site="lax", https_only=config.secure_cookie,
    )
    unreachable = _page(
        "Sign-in is unavailable",
        "The city's sign-in service cannot be reached just now. Try again in a few minutes; if it goes on, "
        "call the IT service desk.", 503,
    )

    @app.exception_handler(SignInRequired)
    async def _to_signin(_: Request, exc: SignInRequired) -> Response:
        from urllib.parse import quote

        return RedirectResponse(f"/signin?next={quote(exc.next_path, safe='/')}", status_code=303)

    @app.get("/signin", include_in_schema=False)
    async def signin(request: Request, next: str | None = None) -> Response:
        request.session["next"] = _safe_next(next)
        try:
            response: Response = await client.authorize_redirect(request, config.public_url.rstrip("/") + "/signin/callback")
        except (httpx.HTTPError, OAuthError, ValueError):
            return unreachable
        return response

    @app.get("/signin/callback", include_in_schema=False)
    async def callback(request: Request) -> Response:
        try:
            token = await client.authorize_access_token(request)
        except OAuthError as exc:
            return _page("Sign-in did not complete", html.escape(exc.description or exc.error or "refused")
                         + " <a href='/signin'>Sign in again</a>.", 400)
        except httpx.HTTPError:
            return unreachable
        claims = token.get("userinfo") or {}
        roles = claims.get(config.roles_claim) or []
        nxt = _safe_next(request.session.pop("next", None))
        request.session.clear()  # a new session on sign-in: nothing from before it survives
        request.session[_PERSON] = {
            "subject": str(claims.get("sub")), "email": (claims.get("email") or "").lower() or None,
            "name": claims.get("name"), "roles": [str(r) for r in (roles.split() if isinstance(roles, str) else roles)],
        }
        request.session[_CSRF] = secrets.token_urlsafe(32)
        return RedirectResponse(nxt, status_code=303)

    @app.post("/signout", include_in_schema=False)
    async def signout(request: Request) -> Response:
        form = await request.form()
        check_csrf(request, str(form.get("csrf") or ""))
        request.session.clear()
        return _page("Signed out", "You are signed out of CityStat. <a href='/'>Back to the start</a>.", 200)
