"""Single sign-on that cannot work says so: the log names the missing secret at start, and
the button leads to a page that says single sign-on is unavailable, never to a traceback;
local users still log in. Over HTTP against an engine in this process."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from tests.conftest import StartEngine
from tests.console.test_security import browser_like, http_table, log_in

pytestmark = pytest.mark.system

OIDC = (
    '[http.oidc]\nissuer = "http://127.0.0.1:1"\nclient_id = "console"\n'
    'client_secret_env = "SSO_TEST_SECRET"\n[http.oidc.roles]\noperator = ["ops"]\n'
)


@pytest.mark.parametrize("secret", ["", "a-secret"], ids=["no secret", "provider down"])
async def test_unavailable_single_sign_on_says_so(
    start_engine: StartEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("SSO_TEST_SECRET", secret)
    with capture_logs() as logs:
        engine = await start_engine(extra=http_table(tmp_path) + OIDC)
    assert engine.http is not None
    missing = [e for e in logs if e["event"].startswith("console single sign-on off")]
    assert [e["variable"] for e in missing] == (["SSO_TEST_SECRET"] if not secret else [])
    host, port = engine.http.address
    async with browser_like(f"http://{host}:{port}") as session:
        async with session.get("/login") as page:
            assert "Sign in with single sign-on" in await page.text()
        async with session.get("/login/oidc?next=/queues", allow_redirects=False) as answer:
            assert answer.status == 502
            text = await answer.text()
            assert "Single sign-on is unavailable" in text and 'href="/login"' in text
        assert (await log_in(session)).status == 303, "local users still log in"


async def test_a_callback_without_a_sign_in_is_refused_and_not_audited(
    start_engine: StartEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSO_TEST_SECRET", "a-secret")
    engine = await start_engine(extra=http_table(tmp_path) + OIDC)
    assert engine.http is not None and engine.store is not None
    host, port = engine.http.address
    async with aiohttp.ClientSession(f"http://{host}:{port}") as session:
        for query in ("", "?state=x&code=y", "?error=access_denied&state=%00"):
            async with session.get(f"/login/oidc/callback{query}") as answer:
                assert answer.status == 400, query
                assert "This sign-in was not started here" in await answer.text()
    refused = [a for a in await engine.store.audit_entries(10) if a.action == "login_refused"]
    assert refused == [], "no sign-in was under way: logged, not audited (anyone may send it)"
