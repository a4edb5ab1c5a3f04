"""The message search in a real headless browser, against an `ins-engine run` subprocess that
received hl7_samples/ (the scenario of `test_console_browser`: SMP0008 parked at the lab):
filters, the outcomes explained, pages, the CSV export, and the patient search kept to the
vigilance role and audited."""

from __future__ import annotations

import csv
import io
from collections import Counter

import pytest
from playwright.sync_api import expect

from engine.tools.message_search import outcome_meanings
from tests.console.test_console_browser import (  # noqa: F401 - `scenario` is the fixture
    REJECTED,
    Scenario,
    login,
    scenario,
)
from tests.replay.corpus import EXPECTATIONS, MESSAGES, patient_strings
from tests.support.browser import screenshot

pytestmark = [pytest.mark.system, pytest.mark.browser]


def found(page_rows: object) -> list[str]:
    return page_rows.locator("a.control-id").all_inner_texts()  # type: ignore[attr-defined]


def test_each_filter_narrows_the_list(scenario: Scenario) -> None:  # noqa: F811
    page = login(scenario, "vera")
    page.click("nav >> text=Messages")
    rows = page.locator("table.messages tbody tr[data-message]")
    page.fill("input[name=control_id]", "SMP001")
    page.click("form.filters button")
    expect(rows).to_have_count(10)
    assert sorted(found(rows)) == [f"SMP00{n}" for n in range(10, 20)]
    page.goto("/messages")
    page.fill("input[name=patient_id]", "800001")  # PID-3 PI of SMP0001 and SMP0023
    page.click("form.filters button")
    expect(rows).to_have_count(2)
    assert found(rows) == ["SMP0023", "SMP0001"]
    page.goto("/messages")
    page.fill("input[name=type]", "ADT^A31")
    page.fill("input[name=application]", "GAM_DEMO")
    page.click("form.filters button")
    a31 = [m for m in MESSAGES if b"|ADT^A31" in m.payload]
    expect(rows).to_have_count(len(a31))
    page.goto("/messages")
    page.select_option("select[name=destination]", "lab")
    page.select_option("select[name=status]", "parked")
    page.click("form.filters button")
    expect(rows).to_have_count(1)
    assert found(rows) == [REJECTED]
    page.context.close()


def test_outcomes_are_offered_with_their_meaning(scenario: Scenario) -> None:  # noqa: F811
    meanings = outcome_meanings()
    page = login(scenario, "vera")
    page.goto("/messages")
    option = page.locator("select[name=outcome] option[value=not_found]")
    expect(option).to_have_text(f"not_found — {meanings['not_found']}")
    page.select_option("select[name=outcome]", "not_found")
    page.click("form.filters button")
    not_found = [entry for entry in EXPECTATIONS if entry["outcome"] == "not_found"]
    expect(page.locator("table.messages tbody tr[data-message]")).to_have_count(len(not_found))
    expect(page.locator("p.meaning")).to_contain_text(meanings["not_found"])
    screenshot(page, "console-messages", scenario.folder)
    page.context.close()


def test_pages_go_back_in_time_and_the_selection_exports_as_csv(
    scenario: Scenario,  # noqa: F811
) -> None:
    page = login(scenario, "vera")
    page.goto("/messages?size=20")
    rows = page.locator("table.messages tbody tr[data-message]")
    seen: list[str] = []
    for expected in (20, 20, 10):
        expect(rows).to_have_count(expected)
        seen += found(rows)
        if expected == 20:
            page.click("a.older")
    expect(page.locator("a.older")).to_have_count(0)
    assert seen == [message.control_id for message in reversed(MESSAGES)]
    page.goto("/messages?type=ADT^A28")
    with page.expect_download() as download:
        page.click("a.export")
    text = download.value.path().read_text("utf-8-sig")
    table = list(csv.DictReader(io.StringIO(text)))
    a28 = [m.control_id for m in MESSAGES if b"|ADT^A28" in m.payload]
    assert sorted(row["control_id"] for row in table) == sorted(a28)
    assert set(table[0]) == {
        "message_id",
        "received_at",
        "control_id",
        "message_type",
        "route",
        "deliveries",
        "outcomes",
    }
    assert Counter(row["message_type"] for row in table) == {"ADT^A28": len(a28)}
    assert all("archive=delivered" in row["deliveries"] for row in table)
    assert sorted(name for name in patient_strings() if name in text) == []
    page.context.close()


def test_a_viewer_cannot_search_by_patient_name(scenario: Scenario) -> None:  # noqa: F811
    page = login(scenario, "otto")
    page.goto("/messages")
    expect(page.locator("input[name=name]")).to_have_count(0)
    for query in ("name=ADRUN", "birth_date=1975-12-31"):
        answer = page.request.get(f"/messages?{query}")
        assert answer.status == 403
        assert "vigilance role" in answer.text()
        assert page.request.get(f"/messages.csv?{query}").status == 403
    page.context.close()


def test_vigilance_searches_by_name_and_birth_date_audited(
    scenario: Scenario,  # noqa: F811
) -> None:
    page = login(scenario, "vick")
    page.goto("/messages")
    page.fill("input[name=name]", "adrtrois")
    page.fill("input[name=birth_date]", "1960-01-01")
    page.click("form.filters button")
    rows = page.locator("table.messages tbody tr[data-message]")
    expect(rows).to_have_count(5)
    assert found(rows) == ["SMP0045", "SMP0039", "SMP0024", "SMP0011", "SMP0010"]
    page.fill("input[name=birth_date]", "")
    page.fill("input[name=name]", "béranger")  # accents and case aside
    page.click("form.filters button")
    assert found(rows) == ["SMP0034", "SMP0022"]
    page.goto("/audit")
    search = page.locator("tr[data-action=search_patients]")
    expect(search).to_have_count(2)
    expect(search.first.locator(".user")).to_have_text("vick")
    expect(search.first.locator(".target")).to_have_text("message list")
    page.context.close()


def test_a_date_it_cannot_read_is_answered_plainly(scenario: Scenario) -> None:  # noqa: F811
    page = login(scenario, "vera")
    answer = page.request.get("/messages?since=yesterday")
    assert answer.status == 400
    assert answer.text() == "since: a date such as 2024-01-31 or 2024-01-31T08:00"
    page.context.close()
