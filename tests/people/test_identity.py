"""Bearer tokens from the real local OpenID provider: accepted when they are the provider's, for
this audience and in date; refused when expired, forged or for another client; a rotated provider
key is accepted after the JWKS refresh."""

import time

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from citystat_common.devidp import STAFF_GROUP, ProviderProcess, demo_people, sign_in_as
from citystat_common.identity import (
    ProviderConfig,
    ProviderKeys,
    ProviderUnreachable,
    RoleMap,
    TokenRefused,
    TokenVerifier,
)

pytestmark = pytest.mark.integration
CLIENT_ID = "citystat-test"


def _verifier(issuer: str, client: httpx.AsyncClient, **kw) -> TokenVerifier:
    config = ProviderConfig(issuer=issuer, audience=CLIENT_ID, **kw)
    return TokenVerifier(config, ProviderKeys(config, client))


@pytest.fixture(scope="module")
def provider():
    with ProviderProcess() as p:
        yield p


def _demo_email_with_role() -> tuple[str, str]:
    from citystat_common.demo import directory_rows

    row = next(r for r in directory_rows() if r["role"] == "stat_partner" and r.get("person_email"))
    return row["person_email"].lower(), row["person_name"]


async def test_a_demo_person_signs_in_and_their_token_verifies(provider):
    email, name = _demo_email_with_role()
    token = sign_in_as(provider.issuer, email, client_id=CLIENT_ID)
    async with httpx.AsyncClient() as client:
        who = await _verifier(provider.issuer, client).verify(token["id_token"])
    assert who.email == email and who.name == name
    assert {STAFF_GROUP, "citystat-stat_partner"} <= who.roles
    assert RoleMap({"citystat-stat_partner": ("indicators:write",)}).scopes(who.roles) == {"indicators:write"}


async def test_expired_wrong_audience_and_forged_tokens_are_refused(provider):
    email, _ = _demo_email_with_role()
    token = sign_in_as(provider.issuer, email, client_id=CLIENT_ID)["id_token"]
    async with httpx.AsyncClient() as client:
        with pytest.raises(TokenRefused, match="not valid here"):
            await _verifier(provider.issuer, client, leeway_seconds=0).verify(token, now=time.time() + 7200)
        with pytest.raises(TokenRefused, match="not valid here"):
            await _verifier(provider.issuer, client).verify(sign_in_as(provider.issuer, email, client_id="another-app")["id_token"])
        real = _verifier(provider.issuer, client)
        elsewhere = TokenVerifier(ProviderConfig(issuer="https://login.other.example", audience=CLIENT_ID), real.keys)
        with pytest.raises(TokenRefused, match="not valid here"):
            await elsewhere.verify(token)  # the provider's key, but not the issuer we trust
        with pytest.raises(ProviderUnreachable):
            await _verifier("http://127.0.0.1:1", client).verify(token)  # a 503 for the caller, not a 401
        # Same claims, signed by a key that is not the provider's (and with the provider's kid).
        published = (await client.get(f"{provider.issuer}/jwks")).json()["keys"][0]
        claims = jwt.decode(token, RSAKey.import_key(published)).claims
        kid = published.get("kid")
        forged = jwt.encode({"alg": "RS256", "kid": kid}, claims, RSAKey.generate_key(2048))
        with pytest.raises(TokenRefused, match="signature"):
            await _verifier(provider.issuer, client).verify(forged)
        with pytest.raises(TokenRefused, match="not a JWT"):
            await _verifier(provider.issuer, client).verify("garbage")
        unsigned = jwt.encode({"alg": "HS256"}, claims, OctKey.import_key("x" * 32))
        with pytest.raises(TokenRefused):
            await _verifier(provider.issuer, client).verify(unsigned)


async def test_a_rotated_provider_key_is_accepted_after_refresh():
    email, _ = _demo_email_with_role()
    first = ProviderProcess().start()
    port = first.port
    try:
        old = sign_in_as(first.issuer, email, client_id=CLIENT_ID)["id_token"]
        async with httpx.AsyncClient() as client:
            verifier = _verifier(first.issuer, client, refresh_min_interval=0)
            assert (await verifier.verify(old)).email == email
            first.stop()
            second = ProviderProcess(port=port).start()  # a new process: a new signing key
            try:
                new = sign_in_as(second.issuer, email, client_id=CLIENT_ID)["id_token"]
                assert (await verifier.verify(new)).email == email  # unknown kid -> one refresh
                with pytest.raises(TokenRefused):
                    await verifier.verify(old)  # the retired key is gone from the JWKS
            finally:
                second.stop()
    finally:
        first.stop()


def test_demo_people_have_one_entry_per_email_with_their_roles_and_departments():
    people = demo_people(
        [
            {"person_email": "A@x.gov", "person_name": "A", "role": "department_head", "department_code": "STREETS"},
            {"person_email": "a@x.gov", "person_name": "A", "role": "stat_partner", "department_code": "WATER"},
            {"person_email": "dm@x.gov", "person_name": "D", "role": "deputy_mayor", "department_code": "STREETS"},
            {"person_email": "", "person_name": "nobody", "role": "hr_partner"},
        ],
        [{"email": "c@x.gov", "name": "C", "department_code": "CONTACT311", "groups": ["citystat-311_staff"]}],
    )
    assert people == [
        {"sub": "a@x.gov", "email": "a@x.gov", "email_verified": True, "name": "A",
         "groups": [STAFF_GROUP, "citystat-department_head", "citystat-dept-STREETS", "citystat-stat_partner",
                    "citystat-dept-WATER"]},
        {"sub": "dm@x.gov", "email": "dm@x.gov", "email_verified": True, "name": "D",
         "groups": [STAFF_GROUP, "citystat-deputy_mayor"]},
        {"sub": "c@x.gov", "email": "c@x.gov", "email_verified": True, "name": "C",
         "groups": [STAFF_GROUP, "citystat-311_staff", "citystat-dept-CONTACT311"]},
    ]
