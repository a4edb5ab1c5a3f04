"""A FHIR server's refusal where operators look: the console's queue page in a real headless
browser shows the parked entry with what the OperationOutcome said (codes, never its text),
and an operator resends it once the server accepts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from engine.console.users import Role, User, hash_password, save_users
from engine.mllp.client import MllpClient
from engine.tools.replay.reader import read_messages
from tests.support.browser import launch, log_in
from tests.support.engine_process import EngineProcess
from tests.support.fhir_proxy import FaultProxy
from tests.support.fhir_server import FhirServer
from tests.support.loop_thread import LoopThread
from tests.support.waiting import until

pytestmark = pytest.mark.browser

SAMPLE = Path(__file__).resolve().parents[2] / "hl7_samples" / "09_a31_vali_ins_verified.hl7"
PASSWORD = "operator-pass-1234"


def write_config(folder: Path, base_url: str) -> Path:
    save_users(
        folder / "users.toml", {"otto": User("otto", Role.OPERATOR, hash_password(PASSWORD))}
    )
    config = folder / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{folder / "engine.db"}"\nlog_format = "json"\n\n'
        '[http]\nlisten = "127.0.0.1:0"\nusers = "users.toml"\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\nenrich = false\n\n'
        '[[routes.destinations]]\nname = "eds"\naccept = ["ADT^A31"]\n'
        f'[routes.destinations.fhir]\nbase_url = "{base_url}"\nupdate_events = ["A31"]\n'
        "merge_events = []\nchange_events = []\n",
        encoding="utf-8",
    )
    return config


def parked(database: Path) -> int:
    with sqlite3.connect(database) as db:
        return int(db.execute("SELECT count(*) FROM outbox WHERE status = 'parked'").fetchone()[0])


async def send(engine: EngineProcess, payload: bytes) -> bytes:
    client = await MllpClient.connect(*engine.address("adt"))
    try:
        return await client.exchange(payload, 30)
    finally:
        await client.close()


def test_a_refused_resource_is_parked_shown_and_resent(
    tmp_path: Path, fhir_server: FhirServer
) -> None:
    fhir_server.reset()
    loop = LoopThread()
    proxy = loop.run(FaultProxy.start(fhir_server.url))
    engine = EngineProcess(write_config(tmp_path, proxy.base_url))
    try:
        loop.run(engine.start())
        proxy.fail_next(200, outcome=False)  # the search finds nothing...
        proxy.fail_next(422)  # ...and the server refuses the write
        (message,) = read_messages(SAMPLE.read_bytes()).messages
        assert b"MSA|AA|" in loop.run(send(engine, message.payload))
        loop.run(until(lambda: parked(tmp_path / "engine.db") > 0))
        with sync_playwright() as playwright:
            browser = launch(playwright)
            context, page = log_in(browser, engine.http_address(), "otto", PASSWORD)
            page.goto("/queues")
            section = page.locator("section.queue[data-destination='adt/eds']")
            row = section.locator("table.entries").first.locator("tbody tr")
            expect(row).to_have_count(1)
            expect(row).to_contain_text("SMP0009")
            expect(row).to_contain_text("update refused (422): error")
            expect(row).not_to_contain_text("injected fault")  # the outcome's free text
            row.locator("button.resend").click()
            expect(page.locator(".notice")).to_contain_text("resent as")
            context.close()
            browser.close()
        loop.run(until(lambda: bool(fhir_server.patients())))
        (patient,) = fhir_server.patients()
        assert patient["identifier"][0]["value"] == "800009"
    finally:
        engine.kill()
        loop.run(proxy.close())
        loop.close()
