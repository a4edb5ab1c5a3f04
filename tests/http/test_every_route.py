"""Every route of the HTTP application walked with hostile values, on each store backend:
huge and negative integers, CR/LF, NUL, backslashes, `//`, schemes, percent-encodings that
are no UTF-8 and 10 kB values, in path parameters, in the query and in form fields, by a
visitor without a session and by the vigilance role (which every page lets in). Every
answer is a 2xx, 3xx or 4xx, the connection is never dropped, no traceback is shown and no
`Location` leaves the engine.

The routes are read from the application's router and the parameter names from the
engine's source and the console's forms: a new page or field is walked once it exists.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import aiohttp
import pytest
import yarl

from engine.console.users import Role
from engine.store.base import MAX_ID
from tests.conftest import StartEngine
from tests.console.test_hostile_parameters import (
    logged_in,
    not_found_identity,
    start_console,
)
from tests.console.test_security import Console, browser_like

pytestmark = pytest.mark.system

ENGINE = Path(__file__).resolve().parents[2] / "engine"
TOKEN_VARIABLE = "INS_ENGINE_API_TOKEN"
TOKEN = "walk-every-route-token"
TEXT = (
    "99999999999999999999999",
    str(MAX_ID + 1),
    str(-MAX_ID - 2),
    "١٢",  # Arabic-Indic digits: \d to a regular expression, not to the store
    "1\r\nSet-Cookie: a=b",
    "\x00",
    "/\\evil.invalid",
    "/.//evil.invalid",
    "/%5Cevil.invalid",
    "https://evil.invalid/",
    "x" * 4000,
    "x" * 10_000,
)
NOT_UTF8 = ("%FF%FE", "%ED%A0%80")  # as sent: no UTF-8 behind them (the second a surrogate)
HOSTILE = tuple(quote(text, safe="") for text in TEXT) + NOT_UTF8
PARALLEL = 16
HEADERS = {"Accept": "text/html", "Authorization": f"Bearer {TOKEN}"}  # a browser's; the API's


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # the path with {parameters}

    def path(self, value: str) -> str:
        return re.sub(r"\{[^}]+\}", lambda _: value, self.template)


def routes(console: Console) -> list[Route]:
    """Every route but the HEAD twin of each GET."""
    assert console.engine.http is not None
    found = set()
    for route in console.engine.http.app.router.routes():
        assert route.resource is not None
        info = route.resource.get_info()
        if route.method != "HEAD":
            found.add(Route(route.method, info.get("formatter") or info["path"]))
    return sorted(found, key=lambda route: (route.template == "/logout", route.template))


def parameter_names() -> list[str]:
    """Every query or form field the engine reads by name, and every field its forms send."""
    names = set()
    for source in ENGINE.rglob("*.py"):
        names.update(re.findall(r"(?:query|form)\.get\(\s*\"(\w+)\"", source.read_text("utf-8")))
    for template in (ENGINE / "console" / "templates").glob("*.html"):
        names.update(
            re.findall(r"<(?:input|select|textarea)\b[^>]*\bname=\"(\w+)\"", template.read_text())
        )
    return sorted(names)


def local(location: str) -> bool:
    """A path of this engine, whichever way a browser reads it; the login page's `next`
    too."""
    if any(char in location for char in "\r\n\t\\"):
        return False
    parts = urlsplit(location)
    path = unquote(parts.path)
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//"):
        return False
    if "\\" in path or re.search(r"/\.{1,2}(/|$)", path):  # `%5C`, dot segments
        return False
    if path != "/login":
        return True
    return all(local(value) for name, value in parse_qsl(parts.query) if name == "next")


@dataclass(frozen=True)
class Probe:
    """One request: a hostile value (as sent) in the path's parameters, or in the query or
    the form under `names`."""

    place: str  # path, query or form
    value: str
    names: tuple[str, ...] = ()

    def fields(self) -> str:
        return "&".join(f"{name}={self.value}" for name in self.names)


def probes(route: Route, names: list[str], one_by_one: bool) -> list[Probe]:
    """Each value in the path, then in the query and the form (a POST's) under each name
    alone, or under every name at once. A POST's query takes every name at once: actions
    read their form."""
    every = [tuple(names)]
    each = [(name,) for name in names] if one_by_one else every
    found = []
    for value in HOSTILE:
        found.append(Probe("path", value))
        for group in each if route.method == "GET" else every:
            found.append(Probe("query", value, group))
        for group in each if route.method == "POST" else []:
            found.append(Probe("form", value, group))
    return found


class Walker:
    """Sends probes, PARALLEL at a time, and keeps what went wrong."""

    def __init__(self, session: aiohttp.ClientSession, form: dict[str, str], who: str) -> None:
        self.session = session
        self.form = form  # what a real page posts: its tokens, every other field benign
        self.who = who
        self.failures: list[str] = []
        self.reached: set[Route] = set()  # let through the guard at least once

    async def walk(self, route: Route, names: list[str], one_by_one: bool) -> None:
        limit = asyncio.Semaphore(PARALLEL)

        async def one(probe: Probe) -> None:
            async with limit:
                await self.send(route, probe)

        await asyncio.gather(*(one(probe) for probe in probes(route, names, one_by_one)))

    async def send(self, route: Route, probe: Probe) -> None:
        path = route.path(probe.value if probe.place == "path" else "1")
        query = probe.fields() if probe.place == "query" else ""
        form = {name: quote(text, safe="") for name, text in self.form.items()}
        if probe.place == "form":
            form.update(dict.fromkeys(probe.names, probe.value))
        where = ",".join(probe.names) if len(probe.names) == 1 else "every name"
        what = f"{self.who}: {route.method} {route.template}, {probe.place} {where}"
        try:
            async with self.session.request(
                route.method,
                yarl.URL(path + (f"?{query}" if query else ""), encoded=True),
                data="&".join(f"{name}={text}" for name, text in form.items()).encode(),
                headers={**HEADERS, "Content-Type": "application/x-www-form-urlencoded"},
                allow_redirects=False,
            ) as answer:
                text = await answer.text(errors="replace")
                location = answer.headers.get("Location")
        except aiohttp.ClientError as error:
            self.failures.append(f"{what} = {probe.value[:40]}: {type(error).__name__}")
            return
        if answer.status not in (401, 403):
            self.reached.add(route)
        if not 200 <= answer.status < 500:
            self.failures.append(f"{what} = {probe.value[:40]}: {answer.status}")
        elif location is not None and not local(location):
            self.failures.append(f"{what} = {probe.value[:40]}: Location {location[:100]}")
        elif "Traceback" in text:
            self.failures.append(f"{what} = {probe.value[:40]}: a traceback in the answer")


def benign(names: list[str], tokens: dict[str, str]) -> dict[str, str]:
    """Every field a form may send, "1" but for the tokens."""
    return {name: tokens.get(name, "1") for name in names}


async def form_tokens(session: aiohttp.ClientSession) -> dict[str, str]:
    """The login form's token (its cookie is set on the way) and the session's CSRF token."""
    tokens = {}
    for path, name in (("/login", "login_token"), ("/queues", "csrf_token")):
        async with session.get(path, allow_redirects=False) as page:
            found = re.search(rf'name="{name}" value="([^"]+)"', await page.text())
        if found is not None:
            tokens[name] = found[1]
    return tokens


@pytest.fixture
async def console(
    start_engine: StartEngine, tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> Console:
    monkeypatch.setenv(TOKEN_VARIABLE, TOKEN)
    await not_found_identity(store_url)  # message 1 and its identity row
    return await start_console(start_engine, tmp_path, store_url)


async def test_every_route_answers_hostile_values_with_a_4xx_at_worst(console: Console) -> None:
    names = parameter_names()
    assert {"next", "back", "before", "reason", "comment", "name", "format"} <= set(names)
    found = routes(console)
    assert Route("POST", "/identities/{message_id}/handled") in found
    failures = []
    async with await logged_in(console, Role.VIGILANCE) as session:  # before logins fail
        walker = Walker(session, benign(names, await form_tokens(session)), "vigilance")
        for route in found:  # /logout last: it ends the session
            await walker.walk(route, names, one_by_one=True)
        failures += walker.failures
        assert walker.reached == set(found), "the session or its CSRF token was refused"
    async with browser_like(console.url) as anonymous:
        # The guard stops every page before its parameters are read: what matters is where
        # it sends the browser, whatever the query.
        walker = Walker(anonymous, benign(names, await form_tokens(anonymous)), "no session")
        for route in found:
            await walker.walk(route, names, one_by_one=False)
        failures += walker.failures
    assert not failures, "\n".join(failures)
