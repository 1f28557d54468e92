"""The embedded default's identity provider: a real OpenID Connect provider (oidc-provider-mock,
built on authlib) on 127.0.0.1:8009, knowing every person of the demo city, so a newcomer signs in
as the STREETS stat partner or a deputy mayor by choosing their email on its form.

    python -m citystat_common.devidp --port 8009

Each person's token carries `email`, `name` and `groups`: "citystat-staff" for everyone in the
directory, one group per senior-team role they hold (e.g. "citystat-stat_partner") and one per
department they work in ("citystat-dept-STREETS"), which the services map to scopes and departments
(citystat_common.auth.DEFAULT_ROLE_MAP, IDENTITY_ROLE_MAP). A restart generates a new signing key:
services pick it up through their JWKS refresh, as they would after a production key rotation.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from citystat_common.auth import DEPARTMENT_GROUP_PREFIX

STAFF_GROUP = "citystat-staff"
CHAIN_ROLES = ("deputy_mayor", "managing_director")


def demo_people(rows: Iterable[dict[str, Any]], staff: Iterable[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """One claims document per distinct email: the senior-team rows of the directory import (a group
    per role they hold and per department they hold it in) and the demo city's other staff (their
    `groups` as the demo data names them, plus their department's)."""
    people: dict[str, dict[str, Any]] = {}

    def add(email: str, name: str | None, groups: Iterable[str]) -> None:
        person = people.setdefault(
            email, {"sub": email, "email": email, "email_verified": True, "name": name, "groups": [STAFF_GROUP]},
        )
        for group in groups:
            if group and group not in person["groups"]:
                person["groups"].append(group)

    for row in rows:
        email = (row.get("person_email") or "").strip().lower()
        if email:
            add(email, row.get("person_name"), [
                f"citystat-{row['role']}" if row.get("role") else "",
                # a deputy mayor or the managing director answers for many departments: no department group
                f"{DEPARTMENT_GROUP_PREFIX}{row['department_code']}"
                if row.get("department_code") and row.get("role") not in CHAIN_ROLES else "",
            ])
    for person in staff:
        email = (person.get("email") or "").strip().lower()
        if email:
            dept = person.get("department_code")
            add(email, person.get("name"), [*person.get("groups", []), f"{DEPARTMENT_GROUP_PREFIX}{dept}" if dept else ""])
    return list(people.values())


def build_app(people: list[dict[str, Any]], *, token_max_age: timedelta = timedelta(hours=8)) -> Any:
    # The provider refuses plain http unless told this is a development set-up.
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
    import oidc_provider_mock
    from oidc_provider_mock._storage import User

    users = [User(sub=p["sub"], claims={k: v for k, v in p.items() if k != "sub"}) for p in people]
    return oidc_provider_mock.app(
        require_nonce=False, issue_refresh_token=False, access_token_max_age=token_max_age, user_claims=users,
    )


class ProviderProcess:
    """The provider as a child process on loopback (tests and scripts); a restart means a new key."""

    def __init__(self, port: int | None = None, token_max_age: int = 3600):
        from citystat_common.localbroker import free_port

        self.port = port or free_port()
        self.token_max_age = token_max_age
        self.process: subprocess.Popen[bytes] | None = None
        self._tokens: dict[tuple[str, str], str] = {}

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ProviderProcess:
        from citystat_common.localbroker import wait_for_port

        self.process = subprocess.Popen(
            [sys.executable, "-m", "citystat_common.devidp", "--port", str(self.port),
             "--token-max-age", str(self.token_max_age)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=20)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def bearer(self, email: str, *, client_id: str = "citystat") -> dict[str, str]:
        """An Authorization header for that person (their ID token, audience client_id), signed in
        once per person and client and kept while this provider runs (tests call it per request)."""
        if (email, client_id) not in self._tokens:
            self._tokens[email, client_id] = sign_in_as(self.issuer, email, client_id=client_id)["id_token"]
        return {"Authorization": f"Bearer {self._tokens[email, client_id]}"}

    def __enter__(self) -> ProviderProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sign_in_as(issuer: str, email: str, *, client_id: str, redirect_uri: str = "http://127.0.0.1:1/callback",
               scope: str = "openid email profile") -> dict[str, Any]:
    """The authorization-code flow with PKCE, answering the provider's form as a person would;
    returns the token response (id_token, access_token). For tests and scripts, never for pages."""
    import secrets
    from urllib.parse import parse_qs, urlparse

    import httpx
    from authlib.integrations.httpx_client import OAuth2Client

    meta = httpx.get(f"{issuer}/.well-known/openid-configuration").json()
    verifier = secrets.token_urlsafe(48)
    with OAuth2Client(client_id, "secret", scope=scope, redirect_uri=redirect_uri,
                      code_challenge_method="S256") as oauth:
        url, state = oauth.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
        answer = httpx.post(url, data={"sub": email}, follow_redirects=False)
        location = answer.headers.get("location", "")
        if answer.status_code not in (302, 303) or parse_qs(urlparse(location).query).get("state") != [state]:
            raise RuntimeError(f"sign-in refused by the provider: {answer.status_code} {answer.text[:300]}")
        return dict(oauth.fetch_token(meta["token_endpoint"], authorization_response=location,
                                      code_verifier=verifier))


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from citystat_common.demo import directory_rows, load

    ap = argparse.ArgumentParser(description="CityStat's local OpenID Connect provider (demo people)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8009)
    ap.add_argument("--token-max-age", type=int, default=8 * 3600, help="seconds")
    args = ap.parse_args(argv)
    people = demo_people(directory_rows(), load("directory.json").get("staff", []))
    print(f"identity provider: http://{args.host}:{args.port}/.well-known/openid-configuration "
          f"({len(people)} demo people; sign in by choosing an email)", flush=True)
    app = build_app(people, token_max_age=timedelta(seconds=args.token_max_age))
    uvicorn.run(app, interface="wsgi", host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
