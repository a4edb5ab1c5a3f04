"""The console in a real headless browser (Debian's chromium, driven by Playwright) against
an `ins-engine run` subprocess that received hl7_samples/ through `ins-engine replay`.

The engine delivers to a file archive and to an MLLP "lab" that rejects (AR) the first
copy of SMP0008, which is therefore parked. One browser serves the whole module; each test
logs in as one role in a context of its own.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from engine.console.users import Role, User, hash_password, save_users
from engine.enrich.outcome import NEEDS_ACTION
from engine.testing.receiver import Received, Receiver, Reply, ack
from tests.replay.conftest import SAMPLES
from tests.replay.corpus import EXPECTATIONS, MESSAGES, patient_strings
from tests.support.browser import launch, log_in, screenshot
from tests.support.cli import run_cli
from tests.support.engine_process import EngineProcess
from tests.support.loop_thread import LoopThread

pytestmark = [pytest.mark.system, pytest.mark.browser]

PASSWORDS = {"vera": "viewer-pass-1234", "otto": "operator-pass-1234", "vick": "vigil-pass-1234"}
ROLES = {"vera": Role.VIEWER, "otto": Role.OPERATOR, "vick": Role.VIGILANCE}
REJECTED = "SMP0008"  # the lab answers AR to its first copy: parked


@dataclass
class Scenario:
    base_url: str
    engine: EngineProcess
    lab: Receiver
    loop: LoopThread
    browser: Browser
    folder: Path

    def message_id(self, control_id: str) -> int:
        return [message.control_id for message in MESSAGES].index(control_id) + 1


def lab_answer(received: Received) -> Reply:
    first = [r.control_id for r in lab_seen].count(received.control_id) == 0
    lab_seen.append(received)
    if received.control_id == REJECTED and first:
        return ack(received, "AR", "207", "refused once")
    return ack(received)


lab_seen: list[Received] = []


def write_config(folder: Path, lab: str) -> Path:
    save_users(
        folder / "users.toml",
        {name: User(name, ROLES[name], hash_password(PASSWORDS[name])) for name in PASSWORDS},
    )
    config = folder / "engine.toml"
    config.write_text(
        f'[engine]\nstore = "sqlite:///{folder / "engine.db"}"\nlog_format = "json"\n\n'
        '[http]\nlisten = "127.0.0.1:0"\nusers = "users.toml"\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n\n'
        f'[[routes.destinations]]\nname = "archive"\nfile = "{folder / "archive"}"\n\n'
        f'[[routes.destinations]]\nname = "lab"\nmllp = "{lab}"\non_failure = "park"\n',
        encoding="utf-8",
    )
    return config


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    folder = tmp_path_factory.mktemp("console")
    lab_seen.clear()
    loop = LoopThread()
    lab = Receiver(lab_answer)
    loop.run(lab.__aenter__())
    engine = EngineProcess(write_config(folder, lab.address))
    loop.run(engine.start())
    try:
        host, port = engine.address("adt")
        replay = run_cli("replay", str(SAMPLES), "--to", f"{host}:{port}")
        assert replay.status == 0, replay.out
        loop.run(lab.wait_for(len(MESSAGES)))
        with sync_playwright() as playwright:
            browser = launch(playwright)
            yield Scenario(engine.http_address(), engine, lab, loop, browser, folder)
            browser.close()
    finally:
        engine.kill()
        loop.run(lab.close())
        loop.close()


def login(scenario: Scenario, name: str) -> Page:
    _, page = log_in(scenario.browser, scenario.base_url, name, PASSWORDS[name])
    return page


def test_every_page_asks_for_a_login(scenario: Scenario) -> None:
    context = scenario.browser.new_context(base_url=scenario.base_url)
    page = context.new_page()
    for path in ("/", "/queues", "/messages", "/messages/1", "/audit"):
        page.goto(path)
        assert re.search(r"/login\?next=", page.url), path
        expect(page.locator("h1")).to_have_text("Log in")
    page.fill("#name", "vera")
    page.fill("#password", "not-her-password")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("Wrong user name or password.")
    screenshot(page, "console-login", scenario.folder)
    context.close()


def test_dashboard_shows_the_counts_of_the_replay(scenario: Scenario) -> None:
    page = login(scenario, "vera")
    route = page.locator("section.card[data-route=adt]")
    expect(route.locator(".acks [data-code=AA]")).to_have_text(f"AA {len(MESSAGES)}")
    expect(route.locator(".unrouted")).to_have_text("0")
    for outcome, count in Counter(str(entry["outcome"]) for entry in EXPECTATIONS).items():
        expect(route.locator(f".outcomes [data-outcome={outcome}]")).to_have_text(
            f"{outcome} {count}"
        )
    lab = page.locator("tr[data-destination='adt/lab']")
    expect(lab.locator(".parked")).to_have_text("1")
    expect(page.locator("tr[data-destination='adt/archive'] .parked")).to_have_text("0")
    expect(page.locator(".banner.simulated")).to_contain_text("SIMULATED")
    expect(page.locator(".insi .breaker")).to_have_text("closed")
    screenshot(page, "console-dashboard", scenario.folder)
    page.context.close()


def test_live_counters_refresh_without_a_reload(scenario: Scenario) -> None:
    context = scenario.browser.new_context(base_url=scenario.base_url)
    context.clock.install()  # the page's timers run on a clock the test moves
    page = context.new_page()
    page.goto("/")
    page.fill("#name", "vera")
    page.fill("#password", PASSWORDS["vera"])
    page.click("button[type=submit]")
    stamp = page.locator("#live .note").inner_text()
    page.evaluate("window.notReloaded = true")
    page.wait_for_timeout(1100)  # the server's clock: a new "refreshed" second
    context.clock.run_for(5_000)  # htmx's "every 5s"
    expect(page.locator("#live .note")).not_to_have_text(stamp)
    assert page.evaluate("window.notReloaded") is True, "htmx swapped the part, no reload"
    page.context.close()


def test_find_a_message_by_control_id_and_follow_its_journey(scenario: Scenario) -> None:
    page = login(scenario, "vera")
    page.click("nav >> text=Messages")
    page.fill("input[name=control_id]", "SMP0010")
    page.click("form.filters button")
    rows = page.locator("table.messages tbody tr")
    expect(rows).to_have_count(1)
    rows.locator("a.control-id").click()
    expect(page.locator("h1")).to_contain_text("Message SMP0010")
    journey = page.locator("ol.journey")
    expect(journey.locator("li.received")).to_contain_text("Received from 127.0.0.1")
    expect(journey.locator("li.ack")).to_contain_text("ACK sent: AA")
    decision = journey.locator("li.decision[data-step=ins_enrich]")
    expect(decision.locator(".outcome")).to_have_text("incoherent")
    expect(decision).to_contain_text("ins_mismatch")
    for destination in ("archive", "lab"):
        expect(journey.locator("li.delivery", has_text=destination)).to_contain_text("delivered")
    expect(journey.locator("li.delivery", has_text="lab")).to_contain_text("ACK AA")
    screenshot(page, "console-message", scenario.folder)
    page.context.close()


def test_a_viewer_sees_no_patient_data_and_cannot_act(scenario: Scenario) -> None:
    page = login(scenario, "vera")
    names = patient_strings()
    parked_id = scenario.message_id(REJECTED)
    for path in ("/", "/queues", "/messages", f"/messages/{parked_id}", "/messages/12"):
        page.goto(path)
        text = page.content()
        assert sorted(name for name in names if name in text) == [], path
    page.goto("/queues")
    expect(page.locator("button.resend")).to_have_count(0)
    expect(page.locator("button.skip")).to_have_count(0)
    expect(page.locator("nav >> text=Identities")).to_have_count(0)
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert csrf
    answer = page.request.post(
        "/queues/entries/1/resend", form={"csrf_token": csrf, "reason": "not allowed"}
    )
    assert answer.status == 403
    for path in ("/audit", f"/messages/{parked_id}/content", "/identities", "/identities.csv"):
        assert page.request.get(path).status == 403, path
    page.context.close()


def test_a_page_above_the_role_says_which_role_and_leads_back(scenario: Scenario) -> None:
    page = login(scenario, "vera")
    answer = page.goto("/audit")
    assert answer is not None and answer.status == 403
    expect(page.locator("h1")).to_have_text("Not for your role")
    expect(page.locator("[role=alert]")).to_contain_text("needs the vigilance role")
    expect(page.locator("header button", has_text="Log out")).to_be_visible()
    screenshot(page, "console-forbidden", scenario.folder)
    page.click("a.back")
    expect(page).to_have_url(scenario.base_url + "/")
    expect(page.locator("section.card[data-route=adt]")).to_be_visible()
    page.context.close()


def test_an_operator_resends_the_parked_message_and_sees_it_delivered(scenario: Scenario) -> None:
    page = login(scenario, "otto")
    page.goto("/queues")
    section = page.locator("section.queue[data-destination='adt/lab']")
    parked = section.locator("table.entries").first.locator("tbody tr")
    expect(parked).to_have_count(1)
    expect(parked).to_contain_text(REJECTED)
    expect(parked).to_contain_text("AR (ERR 207)")
    screenshot(page, "console-queues", scenario.folder)
    parked.locator("button.resend").click()
    expect(page.locator(".notice")).to_contain_text("resent as")
    page.goto(f"/messages/{scenario.message_id(REJECTED)}")
    lab = page.locator("li.delivery", has_text="lab")
    expect(lab).to_have_count(2)  # the parked entry, now resent, and its copy
    deadline = time.monotonic() + 15
    while "delivered" not in lab.last.inner_text() and time.monotonic() < deadline:
        page.wait_for_timeout(200)
        page.reload()
    expect(lab.last).to_contain_text("delivered")
    expect(lab.first).to_contain_text("resent")
    expect(lab.first).to_contain_text("attempt failed, parked: AR (ERR 207)")
    expect(lab.first).to_contain_text("operator: resend as")
    expect(lab.last).to_contain_text("delivered, ACK AA")
    page.context.close()
    audit = login(scenario, "vick")
    audit.goto("/audit")
    row = audit.locator("tr[data-action=resend]").first
    expect(row.locator(".user")).to_have_text("otto")
    expect(row.locator(".target")).to_have_text(re.compile(r"entry \d+"))
    audit.context.close()


def test_vigilance_sees_the_bytes_side_by_side_and_the_view_is_audited(
    scenario: Scenario,
) -> None:
    page = login(scenario, "vick")
    added = scenario.message_id("SMP0001")
    page.goto(f"/messages/{added}")
    page.click("a.show-content")
    expect(page.locator("h1")).to_contain_text("Content of SMP0001")
    lab = page.locator(".bytes", has=page.locator("h3", has_text="Delivered to lab"))
    marked = lab.locator("mark")
    expect(marked.first).to_be_visible()
    assert "ASIP-SANTE-INS-NIR" in " ".join(marked.all_inner_texts()), "the INS added is marked"
    screenshot(page, "console-content", scenario.folder)
    page.goto("/audit")
    view = page.locator("tr[data-action=view_message]").first
    expect(view.locator(".user")).to_have_text("vick")
    expect(view.locator(".target")).to_have_text(f"message {added} (SMP0001)")
    expect(page.locator("tr[data-action=login] .user", has_text="vera").first).to_be_visible()
    expect(page.locator("tr[data-action=login_failed]").first).to_be_visible()
    screenshot(page, "console-audit", scenario.folder)
    page.context.close()


def test_vigilance_works_through_the_identity_list(scenario: Scenario) -> None:
    needing = [entry for entry in EXPECTATIONS if entry["outcome"] in NEEDS_ACTION]
    page = login(scenario, "vick")
    page.click("nav >> text=Identities")
    rows = page.locator("table.identities tbody tr")
    expect(rows).to_have_count(len(needing))
    not_found = page.locator(f"tr[data-message='{scenario.message_id('SMP0008')}']")
    expect(not_found.locator(".outcome")).to_have_text("not_found")
    screenshot(page, "console-identities", scenario.folder)
    not_found.locator("input[name=comment]").fill("searched again at the desk: newborn, no INS yet")
    not_found.locator("button.mark-handled").click()
    expect(page.locator(".notice")).to_contain_text("marked handled")
    expect(rows).to_have_count(len(needing) - 1)
    page.select_option("select[name=state]", "handled")
    page.click("form.filters button")
    expect(rows).to_have_count(1)
    expect(rows.locator(".comment")).to_have_text("searched again at the desk: newborn, no INS yet")
    export = page.request.get("/identities.csv?state=all&sep=semicolon")
    assert export.status == 200
    assert export.headers["content-disposition"].startswith("attachment;")
    lines = export.body().decode("utf-8-sig").splitlines()
    assert lines[0].startswith("received_at;route;control_id;")
    assert lines[0].endswith(";handled_at;handled_by;handled_comment")
    assert len(lines) == 1 + len(needing)
    page.goto("/audit")
    for action in ("view_identities", "mark_handled", "export_identities"):
        expect(page.locator(f"tr[data-action={action}] .user").first).to_have_text("vick")
    page.context.close()


def test_no_patient_data_in_the_engine_log(scenario: Scenario) -> None:
    log = json.dumps(scenario.engine.records, ensure_ascii=False)
    assert "console login" in log, "the console's own lines are part of the check"
    assert sorted(text for text in patient_strings() if text in log) == []


def test_an_operator_reprocesses_a_message_from_its_page(scenario: Scenario) -> None:
    viewer = login(scenario, "vera")
    original = scenario.message_id("SMP0010")
    viewer.goto(f"/messages/{original}")
    meaning = viewer.locator("li.decision[data-step=ins_enrich] .meaning[data-code=incoherent]")
    expect(meaning).to_contain_text("the identity contradicts INSi")  # every role, in place
    expect(viewer.locator("form.reprocess")).to_have_count(0)
    expect(viewer.locator("button.resend")).to_have_count(0)
    viewer.context.close()
    page = login(scenario, "otto")
    page.goto(f"/messages/{original}")
    expect(page.locator("li.delivery button.resend")).to_have_count(2)  # both delivered
    form = page.locator("form.reprocess")
    form.locator("input[name=to][value=archive]").uncheck()
    form.locator("input[name=reason]").fill("INSi back")
    form.locator("button.reprocess").click()
    expect(page.locator(".notice")).to_contain_text("(SMP0010-R1)")
    expect(page.locator("p.reprocess-of")).to_contain_text(f"Reprocess of #{original}")
    expect(page.locator("li.received")).to_contain_text(f"Stored as a reprocess of #{original}")
    lab = page.locator("li.delivery", has_text="lab")
    deadline = time.monotonic() + 15
    while lab.count() == 0 or "delivered" not in lab.inner_text():
        assert time.monotonic() < deadline, page.content()
        page.wait_for_timeout(200)
        page.reload()
    expect(page.locator("li.delivery")).to_have_count(1)  # the lab only, as ticked
    screenshot(page, "console-reprocess", scenario.folder)
    copy_id = int(page.url.rsplit("/", 1)[1])
    page.locator("p.reprocess-of a").click()
    expect(page.locator("p.reprocessed-as")).to_contain_text("Reprocessed as #")
    page.context.close()
    seen = [received.control_id for received in lab_seen]
    assert seen[-1] == "SMP0010-R1" and seen.count("SMP0010-R1") == 1  # after every earlier one
    audit = login(scenario, "vick")
    audit.goto("/audit")
    row = audit.locator("tr[data-action=reprocess]").first
    expect(row.locator(".user")).to_have_text("otto")
    expect(row.locator(".target")).to_have_text(f"message {original} (SMP0010) as {copy_id}")
    audit.context.close()
