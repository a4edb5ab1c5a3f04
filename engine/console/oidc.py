"""Talking to an OpenID Connect provider: the authorization code flow with PKCE, for the
console's single sign-on.

The provider's endpoints come from its discovery document, fetched at the first sign-in
(the engine starts even while the provider is down) and kept. Its signing keys are fetched
with it, and again when a token names a key not seen yet (the provider rolled its keys). An
ID token is trusted only once its signature checks against those keys and its issuer,
audience, expiry and nonce are this sign-in's; the code is exchanged with the PKCE verifier
only this engine knew, so a code intercepted on its way back is useless to anyone else.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from engine.config.settings import OidcSettings
from engine.console.users import Role

TIMEOUT_S = 10.0
SIGN_IN_S = 600.0  # a sign-in not back from the provider within this is forgotten
MAX_PENDING = 10_000
LEEWAY_S = 60  # clock skew tolerated between the provider and this host
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]


class ProviderError(Exception):
    """The provider could not be reached, or answered what cannot be trusted. The message
    names what failed, never a token or a claim's value (it goes to the log)."""


@dataclass(frozen=True)
class Pending:
    """One sign-in under way: what the callback must find again."""

    state: str
    nonce: str
    verifier: str
    redirect_url: str
    target: str  # the console page to land on
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def new(cls, redirect_url: str, target: str) -> Pending:
        return cls(
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(64),
            redirect_url,
            target,
        )

    @property
    def challenge(self) -> str:
        """The PKCE S256 challenge of the verifier."""
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class PendingSignIns:
    """Sign-ins under way, by the random token of the browser that started each (a cookie):
    the callback must come back to the browser that left, with its state, once."""

    def __init__(self) -> None:
        self._pending: OrderedDict[str, Pending] = OrderedDict()

    def add(self, pending: Pending) -> str:
        browser = secrets.token_urlsafe(32)
        self._pending[browser] = pending
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        return browser

    def take(self, browser: str | None) -> Pending | None:
        pending = self._pending.pop(browser or "", None)
        if pending is None or time.monotonic() - pending.started > SIGN_IN_S:
            return None
        return pending


@dataclass(frozen=True)
class Identity:
    """Who signed in, as the ID token says: a name for the audit and the mapped role."""

    user: str
    role: Role | None  # None: no claim value maps to a console role


class OidcClient:
    def __init__(self, settings: OidcSettings, secret: str) -> None:
        self.settings = settings
        self._secret = secret
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def has_secret(self) -> bool:
        return bool(self._secret)

    async def authorization_url(self, pending: Pending) -> str:
        if not self._secret:
            raise ProviderError(f"{self.settings.client_secret_env} (the client secret) is not set")
        metadata = await self._discovered()
        scopes = list(dict.fromkeys(["openid", *self.settings.scopes]))
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": pending.redirect_url,
            "scope": " ".join(scopes),
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": pending.challenge,
            "code_challenge_method": "S256",
        }
        return f"{metadata['authorization_endpoint']}?{urlencode(query)}"

    async def identity(self, code: str, pending: Pending) -> Identity:
        """Exchange the code (with the verifier) and check the ID token it brings."""
        metadata = await self._discovered()
        answer = await self._post(
            metadata["token_endpoint"],
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": pending.redirect_url,
                "code_verifier": pending.verifier,
            },
        )
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise ProviderError("the token endpoint's answer has no id_token")
        claims = await self.verified_claims(id_token, pending.nonce)
        if claim_at(claims, self.settings.roles_claim) is None:
            claims = {**await self._user_info(metadata, answer, claims["sub"]), **claims}
        user = claims.get(self.settings.user_claim) or claims["sub"]
        return Identity(str(user)[:128], role_of(claims, self.settings))

    async def _user_info(
        self, metadata: Mapping[str, Any], answer: Mapping[str, Any], subject: str
    ) -> dict[str, Any]:
        """The user info endpoint's claims, where a provider keeps those the ID token leaves
        out (OpenID Connect puts a scope's claims there); only if they are the same user's."""
        endpoint, access_token = metadata.get("userinfo_endpoint"), answer.get("access_token")
        if not isinstance(endpoint, str) or not isinstance(access_token, str):
            return {}
        headers = {"Authorization": f"Bearer {access_token}"}
        claims = await self._json(self._client().get(endpoint, headers=headers))
        if claims.get("sub") != subject:
            raise ProviderError("the user info endpoint answered for another subject")
        return claims

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def verified_claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of an ID token once its signature, issuer, audience, expiry and
        nonce check (ProviderError otherwise)."""
        try:
            token = jwt.decode(id_token, await self._signing_keys(refresh=False), ALGORITHMS)
        except (JoseError, ValueError):
            try:  # perhaps signed with a key the provider added since: fetch them again
                token = jwt.decode(id_token, await self._signing_keys(refresh=True), ALGORITHMS)
            except (JoseError, ValueError) as error:
                raise ProviderError(f"the ID token's signature is refused ({error})") from None
        try:
            jwt.JWTClaimsRegistry(
                leeway=LEEWAY_S,
                iss={"essential": True, "value": self.settings.issuer},
                aud={"essential": True, "value": self.settings.client_id},
                exp={"essential": True},
                sub={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(token.claims)
        except JoseError as error:
            raise ProviderError(f"the ID token is refused ({error.error})") from None
        return dict(token.claims)

    async def _discovered(self) -> dict[str, Any]:
        if self._metadata is None:
            url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
            metadata = await self._get(url)
            if metadata.get("issuer") != self.settings.issuer:
                raise ProviderError("the discovery document names another issuer")
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(metadata.get(key), str):
                    raise ProviderError(f"the discovery document has no {key}")
            self._metadata = metadata
        return self._metadata

    async def _signing_keys(self, refresh: bool) -> KeySet:
        if self._keys is None or refresh:
            metadata = await self._discovered()
            try:
                self._keys = KeySet.import_key_set(await self._get(metadata["jwks_uri"]))  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError) as error:
                raise ProviderError(f"the provider's keys are unusable ({error})") from None
        return self._keys

    async def _get(self, url: str) -> dict[str, Any]:
        return await self._json(self._client().get(url))

    async def _post(self, url: str, form: Mapping[str, str]) -> dict[str, Any]:
        auth = aiohttp.BasicAuth(self.settings.client_id, self._secret)
        return await self._json(self._client().post(url, data=dict(form), auth=auth))

    async def _json(self, request: Any) -> dict[str, Any]:
        try:
            async with request as response:
                if response.status != 200:
                    raise ProviderError(f"{response.url.path} answered {response.status}")
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise ProviderError(
                f"the provider cannot be reached ({type(error).__name__})"
            ) from None
        if not isinstance(body, dict):
            raise ProviderError("the provider answered something other than a JSON object")
        return body

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        return self._http


def role_of(claims: Mapping[str, Any], settings: OidcSettings) -> Role | None:
    """The highest console role any value of the roles claim maps to (a string or a list;
    `a.b` names a nested one, as Keycloak's `realm_access.roles`)."""
    value = claim_at(claims, settings.roles_claim)
    values = {value} if isinstance(value, str) else set(value) if isinstance(value, list) else set()
    granted = [
        role
        for role, names in (
            (Role.VIEWER, settings.roles.viewer),
            (Role.OPERATOR, settings.roles.operator),
            (Role.VIGILANCE, settings.roles.vigilance),
        )
        if values & set(names)
    ]
    return max(granted, default=None)


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, `a.b` reaching into a nested object; None when absent."""
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value
