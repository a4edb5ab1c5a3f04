"""An ID token is trusted only when its signature checks against the provider's published
keys and its issuer, audience, expiry and nonce are this sign-in's; a key the provider adds
later is fetched again. Against a provider's discovery document and keys served over HTTP on
loopback, with tokens this test signs (the browser tests use a real provider's own)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from engine.config.settings import OidcRoles, OidcSettings
from engine.console.oidc import OidcClient, ProviderError, role_of
from engine.console.users import Role

CLIENT_ID = "console"
NONCE = "the-nonce-of-this-sign-in"


class Provider:
    """Discovery and keys only: enough for the client to check a token."""

    def __init__(self) -> None:
        self.keys = [RSAKey.generate_key(2048, parameters={"kid": "first"})]
        self.issuer = ""

    def sign(self, key: RSAKey | None = None, **changes: Any) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "sub": "u1", "iat": now}
        claims |= {"exp": now + 300, "nonce": NONCE, **changes}
        signer = key or self.keys[-1]
        return jwt.encode({"alg": "RS256", "kid": signer.kid}, claims, signer)

    def app(self) -> web.Application:
        async def discovery(_: web.Request) -> web.Response:
            return web.json_response(
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.issuer}/auth",
                    "token_endpoint": f"{self.issuer}/token",
                    "jwks_uri": f"{self.issuer}/jwks",
                }
            )

        async def keys(_: web.Request) -> web.Response:
            return web.json_response(KeySet(list(self.keys)).as_dict(private=False))

        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", discovery)
        app.router.add_get("/jwks", keys)
        return app


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    provider = Provider()
    runner = web.AppRunner(provider.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    provider.issuer = f"http://{host}:{port}"
    yield provider
    await runner.cleanup()


@pytest.fixture
async def client(provider: Provider) -> AsyncIterator[OidcClient]:
    settings = OidcSettings(issuer=provider.issuer, client_id=CLIENT_ID)
    oidc = OidcClient(settings, "secret")
    yield oidc
    await oidc.close()


async def test_a_token_of_this_sign_in_is_trusted(provider: Provider, client: OidcClient) -> None:
    claims = await client.verified_claims(provider.sign(), NONCE)
    assert claims["sub"] == "u1"


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "http://127.0.0.1:1"},
        {"aud": "another-client"},
        {"exp": int(time.time()) - 3600},
        {"nonce": "another-sign-in"},
    ],
    ids=["issuer", "audience", "expired", "nonce"],
)
async def test_a_token_for_anything_else_is_refused(
    provider: Provider, client: OidcClient, changes: dict[str, Any]
) -> None:
    with pytest.raises(ProviderError, match="the ID token is refused"):
        await client.verified_claims(provider.sign(**changes), NONCE)


async def test_a_token_signed_with_an_unpublished_key_is_refused(
    provider: Provider, client: OidcClient
) -> None:
    forger = RSAKey.generate_key(2048, parameters={"kid": "first"})
    with pytest.raises(ProviderError, match="signature"):
        await client.verified_claims(provider.sign(key=forger), NONCE)


async def test_a_key_the_provider_adds_later_is_fetched(
    provider: Provider, client: OidcClient
) -> None:
    await client.verified_claims(provider.sign(), NONCE)  # the first key, now known
    provider.keys.append(RSAKey.generate_key(2048, parameters={"kid": "second"}))
    claims = await client.verified_claims(provider.sign(), NONCE)
    assert claims["sub"] == "u1"


def test_the_highest_mapped_role_counts_and_a_nested_claim_is_reached() -> None:
    roles = OidcRoles(viewer=["staff"], operator=["ops"], vigilance=["iv"])
    settings = OidcSettings(issuer="https://idp", client_id="c", roles=roles)
    assert role_of({"groups": ["staff", "ops"]}, settings) is Role.OPERATOR
    assert role_of({"groups": "iv"}, settings) is Role.VIGILANCE
    assert role_of({"groups": ["other"]}, settings) is None
    assert role_of({}, settings) is None
    nested = OidcSettings(
        issuer="https://idp", client_id="c", roles=roles, roles_claim="realm_access.roles"
    )
    assert role_of({"realm_access": {"roles": ["staff"]}}, nested) is Role.VIEWER
