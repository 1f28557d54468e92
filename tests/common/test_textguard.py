"""NUL (U+0000) is refused at the door in a path, a query or a text body (PostgreSQL cannot store it,
SQLite can: the backends must answer alike), and everything else reaches the app unchanged."""

import httpx
import pytest
from fastapi import FastAPI, Request

from citystat_common.errors import install_problem_handlers
from citystat_common.textguard import NulTextGuard


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(NulTextGuard)

    @app.api_route("/echo/{name}", methods=["GET", "POST", "PUT", "PATCH"])
    async def echo(name: str, request: Request) -> dict:
        return {"name": name, "body": (await request.body()).decode("utf-8", "replace"), "q": dict(request.query_params)}

    return app


@pytest.fixture
async def client():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app()), base_url="http://t") as c:
        yield c


@pytest.mark.parametrize(
    "method,url,kw,where,field",
    [
        ("GET", "/echo/a%00b", {}, "path", "path"),
        ("GET", "/echo/a?q=1&department=x%00", {}, "query", "department"),
        ("POST", "/echo/a", {"json": {"ok": "x", "lines": [{"name": "a\x00b"}]}}, "body", "lines.0.name"),
        ("PATCH", "/echo/a", {"data": {"title": "t", "note": "a\x00b"}}, "body", "note"),
        ("PUT", "/echo/a", {"content": b"a\x00b", "headers": {"content-type": "text/csv"}}, "body", "body"),
    ],
)
async def test_nul_is_a_422_naming_the_field(client, method, url, kw, where, field):
    answer = await client.request(method, url, **kw)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["detail"] == f"{field}: text must not contain the NUL character (U+0000): found in the {where}"
    assert answer.json()["errors"] == [{"field": field, "message": "text must not contain the NUL character (U+0000)"}]


async def test_other_text_and_binary_bodies_pass_unchanged(client):
    body = '{"name": "Café ☕ \\\\u0000 is a backslash, then u0000"}'.encode()  # JSON for a literal backslash-u
    ok = await client.post("/echo/caf%C3%A9", content=body, params={"q": "50%"},
                           headers={"content-type": "application/json"})
    assert ok.status_code == 422  # the escaped form is refused too: the guard reads bytes, not JSON
    plain = '{"name": "Café ☕ \\u0001"}'.encode()
    ok = await client.post("/echo/caf%C3%A9", content=plain, params={"q": "50%"},
                           headers={"content-type": "application/json"})
    assert ok.status_code == 200
    assert ok.json() == {"name": "café", "body": plain.decode(), "q": {"q": "50%"}}
    binary = await client.post("/echo/a", content=b"\x00\x01", headers={"content-type": "application/octet-stream"})
    assert binary.status_code == 200
