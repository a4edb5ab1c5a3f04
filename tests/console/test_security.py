"""The console's locks, over real HTTP against an engine in this process: nothing answers
without a session but health, metrics and the login page; every change needs the CSRF
token and a same-site origin; wrong passwords are braked; cookies are locked down."""

from __future__ import annotations

import functools
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import trustme
from structlog.testing import capture_logs

from engine.app.runtime import Engine
from engine.config.settings import load_config
from engine.console.users import Role, User, hash_password, save_users
from engine.errors import ConfigError
from tests.conftest import StartEngine
from tests.support.cli import run_beside, run_cli

pytestmark = pytest.mark.system

PASSWORD = "operator-pass-1234"
LOGINS = {
    Role.VIEWER: ("vera", "viewer-pass-1234"),
    Role.OPERATOR: ("otto", PASSWORD),
    Role.VIGILANCE: ("vic", "vigilance-pass-1234"),
}
OPEN = {"/healthz", "/readyz", "/metrics", "/login"}


@dataclass
class Console:
    engine: Engine
    url: str


@functools.cache
def login_users() -> dict[str, User]:
    """The users of LOGINS, hashed once for the run (scrypt's cost is the point of it: about
    0.15 s a hash); each test writes them to a users file of its own."""
    return {
        name: User(name, role, hash_password(password)) for role, (name, password) in LOGINS.items()
    }


def http_table(folder: Path, extra: str = "") -> str:
    save_users(folder / "users.toml", login_users())
    return f'[http]\nlisten = "127.0.0.1:0"\nusers = "{folder / "users.toml"}"\n{extra}'


@pytest.fixture
async def console(start_engine: StartEngine, tmp_path: Path) -> Console:
    engine = await start_engine(extra=http_table(tmp_path, "login_max_failures = 3\n"))
    assert engine.http is not None
    host, port = engine.http.address
    return Console(engine, f"http://{host}:{port}")


async def log_in(
    session: aiohttp.ClientSession,
    name: str = "otto",
    password: str = PASSWORD,
    headers: dict[str, str] | None = None,
) -> aiohttp.ClientResponse:
    async with session.get("/login") as page:
        token = re.search(r'name="login_token" value="([^"]+)"', await page.text())
    assert token is not None
    return await session.post(
        "/login",
        data={"login_token": token[1], "name": name, "password": password, "next": "/queues"},
        headers=headers,
        allow_redirects=False,
    )


async def csrf_of(session: aiohttp.ClientSession) -> str:
    async with session.get("/queues") as page:
        found = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
    assert found is not None
    return found[1]


def browser_like(url: str, context: ssl.SSLContext | None = None) -> aiohttp.ClientSession:
    """A client that keeps cookies for an IP address host, as a browser does."""
    return aiohttp.ClientSession(
        url,
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        connector=aiohttp.TCPConnector(ssl=context) if context else None,
    )


@pytest.fixture
async def client(console: Console) -> AsyncIterator[aiohttp.ClientSession]:
    async with browser_like(console.url) as session:
        yield session


async def test_nothing_answers_without_a_session(console: Console) -> None:
    assert console.engine.http is not None
    routes = {
        (route.method, route.resource.canonical)
        for route in console.engine.http.app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    assert ("POST", "/queues/entries/{entry_id}/resend") in routes
    async with browser_like(console.url) as session:
        for method, pattern in sorted(routes):
            path = re.sub(r"\{[^}]+\}", "1", pattern).replace("/static/1", "/static/console.css")
            async with session.request(
                method, path, allow_redirects=False, headers={"Accept": "text/html"}
            ) as answer:
                if path in OPEN or path.startswith("/static/"):
                    assert answer.status in (200, 403), path  # 403: a login POST without form
                elif method == "GET":
                    assert answer.status == 303, path
                    assert answer.headers["Location"].startswith("/login?next="), path
                else:
                    assert answer.status == 401, path
        async with session.get("/nowhere", allow_redirects=False) as answer:
            assert answer.status == 401, "an unknown path says nothing either"


async def test_login_sets_a_locked_down_session_cookie(client: aiohttp.ClientSession) -> None:
    answer = await log_in(client)
    assert (answer.status, answer.headers["Location"]) == (303, "/queues")
    cookie = answer.cookies["ins_engine_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert not cookie["secure"], "plain HTTP (loopback): a Secure cookie would never come back"
    assert len(cookie.value) >= 40
    async with client.get("/queues") as page:
        assert page.status == 200
        assert "Queues" in await page.text()


async def test_a_wrong_csrf_token_or_a_foreign_origin_is_refused(
    client: aiohttp.ClientSession, console: Console
) -> None:
    await log_in(client)
    token = await csrf_of(client)
    url = "/queues/entries/1/skip"
    for data, headers in (
        ({"reason": "x"}, {}),
        ({"reason": "x", "csrf_token": "forged"}, {}),
        ({"reason": "x", "csrf_token": token}, {"Origin": "https://evil.example"}),
    ):
        async with client.post(url, data=data, headers=headers, allow_redirects=False) as answer:
            assert answer.status == 403, (data, headers)
    assert console.engine.store is not None
    assert await console.engine.store.audit_entries(10) and all(
        row.action != "skip" for row in await console.engine.store.audit_entries(10)
    )
    async with client.post(
        url, data={"reason": "duplicate", "csrf_token": token}, allow_redirects=False
    ) as answer:
        assert answer.status == 303, "the same request with the token goes through"
    rows = await console.engine.store.audit_entries(10)
    assert (rows[0].user, rows[0].action, rows[0].target) == ("otto", "skip", "entry 1")


async def test_wrong_passwords_are_braked_per_user_and_client(console: Console) -> None:
    async with browser_like(console.url) as client:
        for _ in range(3):
            answer = await log_in(client, password="wrong-password-1")
            assert answer.status == 401
        with capture_logs() as logs:
            answer = await log_in(client)  # the right password, but too late
        assert answer.status == 429
        assert int(answer.headers["Retry-After"]) > 800
        assert "Too many failed logins" in await answer.text()
        assert "ins_engine_session" not in answer.cookies
        assert [entry["event"] for entry in logs] == ["console login refused: too many failures"]
    async with browser_like(console.url) as colleague:
        other = await log_in(colleague, "vera", "viewer-pass-1234")
        assert other.status == 303, "another user at the same address is not locked out"
    assert console.engine.store is not None
    actions = [(a.user, a.action) for a in await console.engine.store.audit_entries(50)]
    assert actions.count(("otto", "login_locked")) == 1, "the lockout, once"


async def test_user_unlock_lifts_a_lockout_of_the_running_engine(console: Console) -> None:
    async with browser_like(console.url) as client:
        for _ in range(3):
            await log_in(client, password="wrong-password-1")
        assert (await log_in(client)).status == 429
        done = await run_beside("user", "unlock", "Otto", "--config", console.engine.config.source)
        assert done.status == 0, done.err
        assert "3 recent failed login(s) forgotten" in done.out
        assert (await log_in(client)).status == 303, "no restart needed"
    assert console.engine.store is not None
    rows = await console.engine.store.audit_entries(10)
    unlocked = [(a.user, a.target) for a in rows if a.action == "login_unlocked"]
    assert unlocked == [("command line", "Otto")]


def test_user_unlock_refuses_a_malformed_name(tmp_path: Path) -> None:
    config = tmp_path / "engine.toml"
    config.write_text(f'[engine]\nstore = "sqlite:///{tmp_path / "e.db"}"\n', encoding="utf-8")
    done = run_cli("user", "unlock", "not a name", "--config", str(config))
    assert done.status != 0
    assert "letters, digits" in done.err and "Traceback" not in done.err


async def test_the_login_form_needs_its_own_token(console: Console) -> None:
    async with (
        browser_like(console.url) as session,
        session.post(
            "/login", data={"name": "otto", "password": PASSWORD}, allow_redirects=False
        ) as answer,
    ):
        assert answer.status == 403


async def test_a_removed_user_is_logged_out(
    client: aiohttp.ClientSession, console: Console, tmp_path: Path
) -> None:
    await log_in(client)
    async with client.get("/queues", allow_redirects=False) as answer:
        assert answer.status == 200
    save_users(tmp_path / "users.toml", {})
    async with client.get("/queues", allow_redirects=False) as answer:
        assert answer.status == 401  # no Accept: text/html here


async def test_logout_ends_the_session(client: aiohttp.ClientSession) -> None:
    await log_in(client)
    token = await csrf_of(client)
    async with client.post("/logout", data={"csrf_token": token}, allow_redirects=False) as out:
        assert (out.status, out.headers["Location"]) == (303, "/login")
    async with client.get("/queues", allow_redirects=False) as answer:
        assert answer.status == 401


async def test_over_tls_the_cookie_is_secure(start_engine: StartEngine, tmp_path: Path) -> None:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "http.pem"))
    server.private_key_pem.write_to_path(str(tmp_path / "http.key"))
    tls = f'[http.tls]\ncert = "{tmp_path / "http.pem"}"\nkey = "{tmp_path / "http.key"}"\n'
    engine = await start_engine(extra=http_table(tmp_path) + tls)
    assert engine.http is not None
    host, port = engine.http.address
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with browser_like(f"https://{host}:{port}", context) as session:
        answer = await log_in(session)
        assert answer.cookies["ins_engine_session"]["secure"] is True
        assert answer.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_the_login_page_says_how_to_add_the_first_user(
    start_engine: StartEngine, tmp_path: Path
) -> None:
    users = tmp_path / "nobody.toml"
    engine = await start_engine(extra=f'[http]\nlisten = "127.0.0.1:0"\nusers = "{users}"\n')
    assert engine.http is not None
    host, port = engine.http.address
    async with browser_like(f"http://{host}:{port}") as session, session.get("/login") as page:
        assert "ins-engine user add NAME --role" in await page.text()
    save_users(users, {"ana": User("ana", Role.VIEWER, hash_password("viewer-pass-1234"))})
    async with browser_like(f"http://{host}:{port}") as session, session.get("/login") as page:
        assert "ins-engine user add" not in await page.text()


async def test_a_page_cursor_that_is_no_row_id_lists_from_the_newest(
    client: aiohttp.ClientSession,
) -> None:
    """`before` is typed into a URL by anyone: '²' (a digit to `str.isdigit`, not to `int`)
    and a number past 64 bits list from the top instead of failing with a 500."""
    await log_in(client, "vic", "vigilance-pass-1234")
    for page in ("/messages", "/audit", "/identities"):
        for before in ("²", str(2**64), "-1", "12"):
            async with client.get(page, params={"before": before}) as answer:
                assert answer.status == 200, (page, before)


async def log_in_via_proxy(
    session: aiohttp.ClientSession, client: str, name: str, password: str
) -> aiohttp.ClientResponse:
    """A login relayed by a reverse proxy on loopback for `client`."""
    forwarded = {"X-Forwarded-For": f"203.0.113.9, {client}"}  # the first is the client's
    return await log_in(session, name, password, forwarded)


async def test_behind_a_trusted_proxy_the_brake_counts_per_client(
    start_engine: StartEngine, tmp_path: Path
) -> None:
    """Every request comes from the proxy's address: with the proxy trusted, the brake
    counts that user per client, and a locked-out client's refusals write no audit row
    each (the lockout wrote one)."""
    extra = 'login_max_failures = 3\ntrusted_proxies = ["127.0.0.1"]\n'
    engine = await start_engine(extra=http_table(tmp_path, extra))
    assert engine.http is not None and engine.store is not None
    host, port = engine.http.address
    async with browser_like(f"http://{host}:{port}") as session:
        for _ in range(3):
            answer = await log_in_via_proxy(session, "198.51.100.7", "vera", "guess-1234")
            assert answer.status == 401
        for _ in range(3):
            answer = await log_in_via_proxy(session, "198.51.100.7", "vera", "viewer-pass-1234")
            assert answer.status == 429  # vera is braked at that client
    async with browser_like(f"http://{host}:{port}") as session:
        answer = await log_in_via_proxy(session, "198.51.100.8", "vera", "viewer-pass-1234")
        assert answer.status == 303  # not at another client behind the same proxy
    locked = [a for a in await engine.store.audit_entries(50) if a.action == "login_locked"]
    assert [(a.user, a.target) for a in locked] == [("vera", "198.51.100.7")]


def test_trusted_proxies_must_be_addresses(tmp_path: Path) -> None:
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{tmp_path / "e.db"}"\n\n'
        '[http]\nlisten = "127.0.0.1:0"\ntrusted_proxies = ["proxy.example"]\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"trusted_proxies\[0\]"):
        load_config(config)
