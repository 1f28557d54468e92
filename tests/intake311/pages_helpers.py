"""Helpers for the staff pages' tests: intake311 on a real port with page sign-in through the real
local provider, and the sign-in redirect flow answered as a person would (httpx, no browser)."""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import httpx

from citystat_common.testing import ThreadServer
from intake311.main import create_app

NADIA = "nadia.santiago@city.example.gov"  # 311 queue coordinator, STREETS (demo directory)
JULIAN = "julian.baptiste@city.example.gov"  # WATER
PRIYA = "priya.lindqvist@city.example.gov"  # call-taker, 311 contact center
SIGN_IN = {"identity_client_secret": "intake311-test-client-secret", "session_secret": "intake311-test-session-secret"}


class _Late:
    """The app, built once the server's port (its public URL, the sign-in callback) is known."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@contextmanager
def signed_in_server(settings: Any, issuer: str):
    late = _Late()
    server = ThreadServer(late)  # type: ignore[arg-type]
    late.app = create_app(settings.model_copy(update={"identity_issuer": issuer, "public_url": server.url, **SIGN_IN}))
    with server:
        yield server


def sign_in(web: httpx.Client, email: str, path: str = "/staff/queue") -> httpx.Response:
    """From a page to the provider and back, as ``email``; the page after sign-in."""
    first = web.get(path)
    assert first.status_code == 303 and first.headers["location"].startswith("/signin?next="), first.text
    to_provider = web.get(first.headers["location"])
    assert to_provider.status_code == 302, to_provider.text
    code = httpx.post(to_provider.headers["location"], data={"sub": email})  # the person's choice on its form
    assert code.status_code in (302, 303), code.text
    back = web.get(code.headers["location"])
    assert back.status_code == 303 and urlparse(back.headers["location"]).path == path.split("?")[0]
    return web.get(back.headers["location"])


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
