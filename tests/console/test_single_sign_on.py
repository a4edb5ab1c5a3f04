"""Single sign-on in a real headless browser: an `ins-engine run` subprocess whose console
signs in at a real OpenID Connect provider (panva's oidc-provider, tests/peers/), through
its login form and consent page, with the authorization code flow and PKCE.

An account whose `groups` claim holds a mapped value lands on the console with that role;
one whose claim maps to nothing is refused with a page that says so; a callback whose state
is not the browser's sign-in is refused; each is in the audit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.browser import launch, screenshot
from tests.support.engine_process import EngineProcess
from tests.support.loop_thread import LoopThread
from tests.support.oidc_provider import OidcProvider

pytestmark = [pytest.mark.system, pytest.mark.browser]

CLIENT_ID = "ins-engine-console"
SECRET = "a-client-secret-for-tests-only"
ACCOUNTS = {
    "alice": {"groups": ["staff", "ins-operators"]},
    "vic": {"groups": ["identitovigilance"]},
    "bob": {"groups": ["staff"]},  # no group the console maps: refused
}


@dataclass
class Scenario:
    base_url: str
    browser: Browser
    folder: Path


def write_config(folder: Path, issuer: str) -> Path:
    config = folder / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{folder / "engine.db"}"\nlog_format = "json"\n\n'
        '[http]\nlisten = "127.0.0.1:0"\nusers = "users.toml"\n\n'
        f'[http.oidc]\nissuer = "{issuer}"\nclient_id = "{CLIENT_ID}"\n'
        'client_secret_env = "CONSOLE_OIDC_SECRET"\nscopes = ["openid", "profile", "groups"]\n'
        'roles_claim = "groups"\nlabel = "the hospital account"\n\n'
        '[http.oidc.roles]\nviewer = ["ins-viewers"]\noperator = ["ins-operators"]\n'
        'vigilance = ["identitovigilance"]\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n\n'
        f'[[routes.destinations]]\nname = "archive"\nfile = "{folder / "archive"}"\n',
        encoding="utf-8",
    )
    return config


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    folder = tmp_path_factory.mktemp("sso")
    provider = OidcProvider.start()
    loop = LoopThread()
    engine = EngineProcess(
        write_config(folder, provider.issuer), env={"CONSOLE_OIDC_SECRET": SECRET}
    )
    try:
        loop.run(engine.start())
        base_url = engine.http_address()
        provider.configure(
            {
                "client_id": CLIENT_ID,
                "client_secret": SECRET,
                "redirect_uris": [f"{base_url}/login/oidc/callback"],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            },
            ACCOUNTS,
        )
        with sync_playwright() as playwright:
            browser = launch(playwright)
            yield Scenario(base_url, browser, folder)
            browser.close()
    finally:
        engine.kill()
        loop.close()
        provider.stop()


def at_the_provider(scenario: Scenario, account: str) -> Page:
    """A fresh browser that chose single sign-on and signed in at the provider as
    `account` (any password), consenting; it is left wherever the console sends it."""
    context = scenario.browser.new_context(
        base_url=scenario.base_url, viewport={"width": 1280, "height": 860}
    )
    page = context.new_page()
    page.goto("/queues")
    page.click("a.sso")
    page.fill("input[name=login]", account)
    page.fill("input[name=password]", "whatever the provider's test form takes")
    page.click("button[type=submit]")
    page.click("button:has-text('Continue')")  # the consent page
    return page


def test_the_login_page_offers_single_sign_on_beside_local_users(scenario: Scenario) -> None:
    page = scenario.browser.new_page(viewport={"width": 1280, "height": 860})
    page.goto(f"{scenario.base_url}/login")
    expect(page.locator("a.sso")).to_have_text("Sign in with the hospital account")
    expect(page.locator("#name")).to_be_visible()  # local users are kept as a fallback
    screenshot(page, "console-login-sso", scenario.folder)
    page.close()


def test_an_account_with_a_mapped_group_lands_with_its_role(scenario: Scenario) -> None:
    page = at_the_provider(scenario, "alice")
    page.wait_for_url(re.compile(r".*/queues$"))
    expect(page.locator(".who")).to_contain_text("alice · operator")
    expect(page.locator("h1")).to_contain_text("Queues")
    answer = page.goto("/identities")
    assert answer is not None and answer.status == 403, "the operator role, no more"
    page.context.close()


def test_an_account_whose_claim_maps_to_no_role_is_refused(scenario: Scenario) -> None:
    page = at_the_provider(scenario, "bob")
    page.wait_for_url(re.compile(r".*/login/oidc/callback\?.*"))
    expect(page.locator(".error")).to_contain_text("Your account (bob) has no role")
    expect(page.locator("a[href='/login']")).to_be_visible()
    page.goto("/queues")
    assert re.search(r"/login\?next=", page.url), "no session was opened"
    page.context.close()


def test_a_callback_with_another_state_is_refused(scenario: Scenario) -> None:
    context = scenario.browser.new_context(base_url=scenario.base_url)
    page = context.new_page()
    page.goto("/login")
    page.click("a.sso")  # a sign-in started: its cookie is set, the provider's form shown
    page.wait_for_selector("input[name=login]")
    page.goto("/login/oidc/callback?code=stolen-code&state=forged-state")
    expect(page.locator(".error")).to_contain_text("This sign-in was not started here")
    page.goto("/queues")
    assert re.search(r"/login\?next=", page.url), "no session was opened"
    context.close()
    vic = at_the_provider(scenario, "vic")
    vic.wait_for_url(re.compile(r".*/queues$"))
    vic.goto("/audit")
    expect(vic.locator("table")).to_contain_text("single sign-on: another state")
    vic.context.close()


def test_sign_ins_and_refusals_are_in_the_audit(scenario: Scenario) -> None:
    at_the_provider(scenario, "bob").context.close()
    page = at_the_provider(scenario, "vic")
    page.wait_for_url(re.compile(r".*/queues$"))
    page.goto("/audit")
    table = page.locator("table").inner_text()
    assert re.search(r"vic\s+login\s+.*vigilance \(single sign-on\)", table), table
    assert re.search(r"bob\s+login_refused\s+.*single sign-on: no role", table), table
    page.context.close()
