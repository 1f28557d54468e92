"""Sign-in to pages through the real local OpenID provider: the whole redirect flow with PKCE, a
session cookie that is HttpOnly and SameSite=Lax, CSRF on forms, sign-out, no open redirect, and a
plain 503 page when the provider cannot be reached."""

from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse

from citystat_common.devidp import ProviderProcess
from citystat_common.localbroker import free_port
from citystat_common.signin import (
    SESSION_COOKIE,
    SignedIn,
    SignInConfig,
    check_csrf,
    csrf_token,
    install_signin,
)
from citystat_common.testing import ThreadServer

pytestmark = pytest.mark.integration
EMAIL = "desmond.valdez@city.example.gov"  # the demo STREETS commissioner


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/me")
    async def me(request: Request, person: SignedIn) -> HTMLResponse:
        return HTMLResponse(f"<p>{person.label}</p><form method='post' action='/act'>"
                            f"<input name='csrf' value='{csrf_token(request)}'></form>")

    @app.post("/act")
    async def act(request: Request, person: SignedIn, csrf: str = Form("")) -> HTMLResponse:
        check_csrf(request, csrf)
        return HTMLResponse(f"done by {person.label}")

    return app


@pytest.fixture(scope="module")
def provider():
    with ProviderProcess() as p:
        yield p


def _serve(issuer: str) -> ThreadServer:
    app = _app()
    server = ThreadServer(app)
    install_signin(app, SignInConfig(issuer=issuer, client_id="citystat-pages", client_secret="s",
                                     session_secret="test-session-secret", public_url=server.url))
    return server


def _sign_in(web: httpx.Client, path: str = "/me") -> httpx.Response:
    first = web.get(path)
    assert first.status_code == 303 and first.headers["location"].startswith("/signin?next=")
    to_provider = web.get(first.headers["location"])
    assert to_provider.status_code == 302
    query = parse_qs(urlparse(to_provider.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]  # PKCE
    code = httpx.post(to_provider.headers["location"], data={"sub": EMAIL})  # the person's choice on the form
    assert code.status_code in (302, 303)
    back = web.get(code.headers["location"])
    assert back.status_code == 303
    return back


def test_the_whole_redirect_flow_then_a_form_with_and_without_its_token(provider):
    with _serve(provider.issuer) as server, httpx.Client(base_url=server.url) as web:
        back = _sign_in(web)
        cookie = back.headers["set-cookie"]
        assert SESSION_COOKIE in cookie and "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
        assert "secure" not in cookie.lower()  # plain http on loopback; https turns it on
        assert back.headers["location"] == "/me"
        page = web.get("/me")
        assert page.status_code == 200 and "Desmond Valdez" in page.text
        token = page.text.split("value='")[1].split("'")[0]
        assert web.post("/act", data={"csrf": "forged"}).status_code == 403
        assert web.post("/act", data={}).status_code == 403
        done = web.post("/act", data={"csrf": token})
        assert done.status_code == 200 and done.text == "done by Desmond Valdez"
        # Another browser (no cookie) with the same token is not signed in.
        with httpx.Client(base_url=server.url) as stranger:
            assert stranger.post("/act", data={"csrf": token}).status_code == 303
        assert web.post("/signout", data={"csrf": token}).status_code == 200
        assert web.get("/me").status_code == 303


def test_next_is_a_local_path_only(provider):
    with _serve(provider.issuer) as server, httpx.Client(base_url=server.url) as web:
        web.get("/signin", params={"next": "//evil.example/steal"})
        first = web.get("/me")  # start over through the page, then check where the callback goes
        assert first.status_code == 303
        to_provider = web.get("/signin", params={"next": "https://evil.example/"})
        code = httpx.post(to_provider.headers["location"], data={"sub": EMAIL})
        assert web.get(code.headers["location"]).headers["location"] == "/"


def test_a_provider_that_cannot_be_reached_gets_a_plain_page():
    with _serve(f"http://127.0.0.1:{free_port()}") as server, httpx.Client(base_url=server.url) as web:
        answer = web.get("/signin")
        assert answer.status_code == 503 and "cannot be reached" in answer.text and "Traceback" not in answer.text
