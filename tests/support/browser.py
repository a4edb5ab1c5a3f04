"""Debian's chromium, headless, driven by Playwright (never a browser of Playwright's own:
`.ci/run` installs the `chromium` package)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, Playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGUMENTS = [
    "--no-sandbox",  # CI runs as root
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",  # the machine has no network beyond loopback
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS")
"""A folder to keep screenshots of the main pages in (the README's come from `docs/`)."""


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGUMENTS)


def log_in(
    browser: Browser, base_url: str, name: str, password: str
) -> tuple[BrowserContext, Page]:
    """A fresh browser context (its own cookies) logged in as `name`."""
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.goto("/")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/$"))
    return context, page


def screenshot(page: Page, name: str, folder: Path) -> Path:
    """Save a full-page screenshot in `folder`, and in CONSOLE_SCREENSHOTS when set."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)
    return path
