"""People as API callers: a bearer token from the real local provider becomes a principal with the
scopes of its groups and the person's name on every write; keys keep working; a refused token is a
401 and a missing scope a 403 that says whose."""

import httpx
import pytest
from fastapi import FastAPI

from citystat_common.auth import KeyStore, Principal, person_principal, require_scope
from citystat_common.devidp import ProviderProcess, sign_in_as
from citystat_common.identity import ProviderConfig, ProviderKeys, TokenVerifier

pytestmark = pytest.mark.integration
AUDIENCE = "citystat-api"


def _app(issuer: str) -> FastAPI:
    app = FastAPI()
    app.state.keystore = KeyStore([{"name": "ops", "key": "k-ops", "scopes": ["escalation:write"]}])
    config = ProviderConfig(issuer=issuer, audience=AUDIENCE)
    app.state.token_verifier = TokenVerifier(config, ProviderKeys(config, httpx.AsyncClient()))

    @app.post("/tickets/t1/ack")
    async def ack(principal: Principal = require_scope("escalation:write")) -> dict:
        return principal.actor().as_dict()

    @app.post("/indicators")
    async def create(principal: Principal = require_scope("indicators:write")) -> dict:
        return {"by": principal.actor().label}

    return app


def _row(role: str) -> dict:
    from citystat_common.demo import directory_rows

    return next(r for r in directory_rows() if r["role"] == role and r.get("person_email"))


async def test_bearer_tokens_keys_and_refusals():
    partner, head = _row("stat_partner"), _row("department_head")
    with ProviderProcess() as provider:
        token = sign_in_as(provider.issuer, partner["person_email"], client_id=AUDIENCE)["id_token"]
        head_token = sign_in_as(provider.issuer, head["person_email"], client_id=AUDIENCE)["id_token"]
        other_audience = sign_in_as(provider.issuer, partner["person_email"], client_id="another")["id_token"]
        transport = httpx.ASGITransport(app=_app(provider.issuer))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            me = await c.post("/tickets/t1/ack", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200
            assert me.json() == {"kind": "person", "name": partner["person_name"],
                                 "email": partner["person_email"].lower(), "via": "bearer"}
            key = await c.post("/tickets/t1/ack", headers={"X-API-Key": "k-ops"})
            assert key.json() == {"kind": "key", "name": "ops", "email": None, "via": "key"}
            refused = await c.post("/tickets/t1/ack", headers={"Authorization": f"Bearer {other_audience}"})
            assert refused.status_code == 401 and "invalid_token" in refused.headers["www-authenticate"]
            assert (await c.post("/tickets/t1/ack", headers={"Authorization": "Bearer x.y.z"})).status_code == 401
            assert (await c.post("/tickets/t1/ack")).status_code == 401
            # A department head may act on tickets but does not define indicators.
            denied = await c.post("/indicators", headers={"Authorization": f"Bearer {head_token}"})
            assert denied.status_code == 403 and "you lack the 'indicators:write' scope" in denied.text
            assert (await c.post("/indicators", headers={"Authorization": f"Bearer {token}"})).status_code == 200


def test_groups_give_scopes_and_departments():
    p = person_principal(name="Ann", email="ann@x.gov", subject="s", via="session",
                         roles=["citystat-staff", "citystat-311_staff", "citystat-dept-streets", "unknown-group"])
    assert p.has("311:write") and p.has("311:submit") and p.has("staff") and not p.has("escalation:write")
    assert p.departments == {"STREETS"} and p.actor().label == "Ann"
    nobody = person_principal(name=None, email="b@x.gov", subject="s", via="bearer", roles=[])
    assert nobody.scopes == frozenset() and nobody.name == "b@x.gov"
    key = KeyStore([{"name": "streets-wo", "key": "k", "scopes": ["311:write"], "departments": ["streets"]}])
    assert key.authenticate("k").departments == {"STREETS"} and key.authenticate("k").actor().label == "key streets-wo"
