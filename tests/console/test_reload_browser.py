"""The dashboard says how the last reload of the configuration went, in a real headless
browser against an `ins-engine run` subprocess reloaded by SIGHUP: refused with the reason
(file and key) while the running route keeps serving, then applied with what changed."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from engine.console.users import Role, User, hash_password, save_users
from tests.support.browser import launch, log_in, screenshot
from tests.support.engine_process import EngineProcess
from tests.support.loop_thread import LoopThread
from tests.support.waiting import until

pytestmark = [pytest.mark.system, pytest.mark.browser]

PASSWORD = "viewer-pass-1234"


HOSTS = {"adt": 1, "lab": 2}  # 127.0.0.N: any port


def write_route(folder: Path, name: str, extra: str = "") -> None:
    (folder / f"{name}.route.toml").write_text(
        f'name = "{name}"\nlisten = "127.0.0.{HOSTS[name]}:0"\nenrich = false\n{extra}\n'
        f'[[destinations]]\nname = "archive"\nfile = "{folder / name}"\n',
        encoding="utf-8",
    )


def test_the_dashboard_shows_the_last_reload(tmp_path: Path) -> None:
    save_users(
        tmp_path / "users.toml", {"vera": User("vera", Role.VIEWER, hash_password(PASSWORD))}
    )
    config = tmp_path / "engine.toml"
    config.write_text(
        'route_files = ["*.route.toml"]\n\n'
        f'[engine]\nstore = "sqlite:///{tmp_path / "engine.db"}"\nlog_format = "json"\n\n'
        '[http]\nlisten = "127.0.0.1:0"\nusers = "users.toml"\n',
        encoding="utf-8",
    )
    write_route(tmp_path, "adt")
    loop = LoopThread()
    engine = EngineProcess(config)
    loop.run(engine.start())
    try:
        write_route(tmp_path, "adt", "max_connections = -1")
        engine.send_signal(signal.SIGHUP)
        loop.run(until(lambda: engine.logged("configuration reload refused")))
        with sync_playwright() as playwright:
            browser = launch(playwright)
            _, page = log_in(browser, engine.http_address(), "vera", PASSWORD)
            reload = page.locator("section.reload")
            expect(reload).to_have_attribute("data-reload", "refused")
            expect(reload.locator(".reason")).to_contain_text("adt.route.toml: max_connections")
            expect(page.locator("section.card[data-route=adt] .pill")).to_have_text("listening")
            screenshot(page, "console-reload", tmp_path)

            write_route(tmp_path, "adt")
            write_route(tmp_path, "lab")
            engine.send_signal(signal.SIGHUP)
            loop.run(until(lambda: engine.logged("configuration reloaded")))
            page.reload()
            expect(reload).to_have_attribute("data-reload", "applied")
            expect(reload).to_contain_text("added lab")
            expect(page.locator("section.card[data-route=lab] .pill")).to_have_text("listening")
            browser.close()
    finally:
        engine.kill()
        loop.close()
