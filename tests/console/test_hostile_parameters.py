"""What an attacker types into the console's URLs and forms, over real HTTP: an id no row
can have is not found on each store backend (never a 500 from the database's integer
range), a redirect never leaves the engine and keeps the local target whole, and a target
with a line break is refused rather than written into a header."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from engine.console.users import Role
from engine.steps.registry import registry
from engine.store.backends import open_store
from engine.store.base import MAX_ID, RoutingResult
from tests.conftest import StartEngine
from tests.console.test_security import LOGINS, Console, browser_like, csrf_of, http_table, log_in
from tests.store.conftest import enriched, incoming

pytestmark = pytest.mark.system

PAST_64_BITS = ("99999999999999999999999", str(MAX_ID + 1))
# (method, path with {id}, form, the least role that reaches the handler)
BY_ID = (
    ("GET", "/messages/{id}", {}, Role.VIEWER),
    ("GET", "/messages/{id}/content", {}, Role.VIGILANCE),
    ("POST", "/queues/entries/{id}/resend", {"reason": "again"}, Role.OPERATOR),
    ("POST", "/queues/entries/{id}/skip", {"reason": "not needed"}, Role.OPERATOR),
    ("POST", "/identities/{id}/handled", {"comment": "checked"}, Role.VIGILANCE),
)


async def start_console(
    start_engine: StartEngine, folder: Path, store_url: str | None = None
) -> Console:
    engine = await start_engine(extra=http_table(folder), store=store_url)
    assert engine.http is not None
    host, port = engine.http.address
    return Console(engine, f"http://{host}:{port}")


@pytest.fixture
async def console(start_engine: StartEngine, tmp_path: Path) -> Console:
    return await start_console(start_engine, tmp_path)


async def logged_in(console: Console, role: Role) -> aiohttp.ClientSession:
    session = browser_like(console.url)
    answer = await log_in(session, *LOGINS[role])
    assert answer.status == 303
    return session


async def test_an_id_past_the_64_bit_range_is_not_found(
    start_engine: StartEngine, tmp_path: Path, store_url: str
) -> None:
    console = await start_console(start_engine, tmp_path, store_url)
    for role in Role:
        async with await logged_in(console, role) as session:
            token = await csrf_of(session)
            for method, pattern, form, needed in BY_ID:
                for number in PAST_64_BITS:
                    path = pattern.format(id=number)
                    async with session.request(
                        method, path, data={**form, "csrf_token": token}, allow_redirects=False
                    ) as answer:
                        assert answer.status == (404 if role >= needed else 403), (role, path)


async def login_with_next(session: aiohttp.ClientSession, target: str) -> aiohttp.ClientResponse:
    async with session.get("/login") as page:
        token = re.search(r'name="login_token" value="([^"]+)"', await page.text())
    assert token is not None
    name, password = LOGINS[Role.OPERATOR]
    return await session.post(
        "/login",
        data={"login_token": token[1], "name": name, "password": password, "next": target},
        allow_redirects=False,
    )


async def test_a_login_never_redirects_off_site(console: Console) -> None:
    """Dot segments, an encoded backslash or an encoded slash can turn a path into `//host`
    once normalised: each goes home; a local path goes there normalised. Browsers drop tabs
    and line breaks from a URL (`/<TAB>/evil` is `//evil`): a target holding one is refused."""
    for target, location in (
        ("//evil.invalid/", "/"),
        ("https://evil.invalid/", "/"),
        ("javascript:alert(1)", "/"),
        ("/\\evil.invalid", "/"),
        ("/.//evil.invalid", "/"),
        ("/a/..//evil.invalid", "/"),
        ("/%5Cevil.invalid", "/"),
        ("/%2F/evil.invalid", "/"),
        ("/%2e/%2fevil.invalid", "/"),
        ("/%FF", "/"),  # not UTF-8: no page of the engine
        ("/ /evil.invalid", "/%20/evil.invalid"),  # a path of this engine
        ("/queues/../messages/./?x=1#top", "/messages/?x=1"),
    ):
        async with (
            browser_like(console.url) as session,
            await login_with_next(session, target) as answer,
        ):
            assert (answer.status, answer.headers["Location"]) == (303, location), target
    for target in ("/\t/evil.invalid", "/\n/evil.invalid", "/queues\r\nSet-Cookie: a=b"):
        async with (
            browser_like(console.url) as session,
            await login_with_next(session, target) as answer,
        ):
            assert answer.status == 400, target
            assert "ins_engine_session" not in answer.cookies, "no login with a hostile target"


async def test_the_way_through_the_login_page_keeps_the_whole_target(console: Console) -> None:
    target = "/messages?route=adt&control_id=a%26b&status=parked"
    async with browser_like(console.url) as session:
        async with session.get(
            target, headers={"Accept": "text/html"}, allow_redirects=False
        ) as answer:
            assert answer.status == 303
            login_page = answer.headers["Location"]
        async with session.get(login_page) as page:
            found = re.search(r'name="next" value="([^"]+)"', await page.text())
        assert found is not None and found[1].replace("&amp;", "&") == target
        async with await login_with_next(session, found[1].replace("&amp;", "&")) as answer:
            assert answer.headers["Location"] == target


async def not_found_identity(store_url: str) -> int:
    """A message whose identity INSi did not find, stored before the engine starts (its
    router would route a message accepted under it)."""
    store = await open_store(store_url, extensions=registry().store_extensions())
    try:
        accepted = await store.accept(incoming("ID1"))
        decision = enriched("not_found", birth_name="DARK")
        await store.route_messages([RoutingResult(accepted.message_id, [], [decision])])
    finally:
        await store.close()
    return accepted.message_id


async def test_a_back_target_with_a_line_break_is_refused(
    start_engine: StartEngine, tmp_path: Path, store_url: str
) -> None:
    message_id = await not_found_identity(store_url)
    console = await start_console(start_engine, tmp_path, store_url)
    async with await logged_in(console, Role.VIGILANCE) as session:
        token = await csrf_of(session)
        handled = f"/identities/{message_id}/handled"
        for back, status, location in (
            ("/identities?x=1\r\nSet-Cookie: a=b", 400, None),
            ("//evil.invalid/identities?x=1", 303, "/identities"),
            ("/identities?state=all", 303, "/identities?state=all"),
        ):
            form = {"csrf_token": token, "comment": "checked", "back": back}
            async with session.post(handled, data=form, allow_redirects=False) as answer:
                assert answer.status == status, back
                assert answer.headers.get("Location") == location, back
