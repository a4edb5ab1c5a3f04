"""What a FHIR server's answer does to a queue entry, and what of it may be kept: the
OperationOutcome's codes and element paths, never its free text or a quoted value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.delivery.destination import Outcome
from engine.fhir.outcomes import judge, outcome_summary
from engine.fhir.server import Answer


def outcome(*issues: dict[str, object]) -> dict[str, object]:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


@pytest.mark.parametrize("status", [200, 201, 204])
def test_done(status: int) -> None:
    assert judge(Answer(status, None), "update") is None


def test_several_matches_park_as_an_identity_problem() -> None:
    result = judge(
        Answer(412, outcome({"severity": "error", "code": "multiple-matches"})), "update"
    )
    assert result is not None
    assert result.outcome is Outcome.PARK
    assert result.ack_code == "412"
    assert "identity problem" in result.error


@pytest.mark.parametrize("status", [400, 422])
def test_refused_content_parks_with_what_the_outcome_says(status: int) -> None:
    body = outcome(
        {
            "severity": "error",
            "code": "invalid",
            "details": {"coding": [{"code": "MSG_DATE_FORMAT"}]},
            "diagnostics": "Invalid date DUPONT 19970226",
            "expression": ["Patient.birthDate"],
        }
    )
    result = judge(Answer(status, body), "update")
    assert result is not None and result.outcome is Outcome.PARK
    assert (
        result.error
        == f"update refused ({status}): error invalid MSG_DATE_FORMAT Patient.birthDate"
    )


@pytest.mark.parametrize("status", [401, 403, 404, 405, 408, 409, 429, 500, 502, 503, 504])
def test_other_answers_are_retried(status: int) -> None:
    result = judge(Answer(status, None), "update")
    assert result is not None
    assert result.outcome is Outcome.RETRY
    assert result.error == f"update: answered {status}"


def test_an_expression_quoting_a_value_keeps_only_the_path() -> None:
    body = outcome(
        {
            "severity": "error",
            "code": "invalid",
            "expression": ["Patient.identifier.where(value='109076322083489').value"],
        }
    )
    assert outcome_summary(body) == ": error invalid Patient.identifier.where.value"


def test_many_issues_are_counted_not_listed() -> None:
    body = outcome(*({"severity": "error", "code": "invalid"} for _ in range(8)))
    assert outcome_summary(body).endswith("(+3 more)")


TEXT = st.text(min_size=1, max_size=30)
NAMES = st.from_regex(r"[A-Z][a-z]{2,12} [A-Z]{3,12}", fullmatch=True)


@given(name=NAMES, issues=st.lists(st.dictionaries(TEXT, TEXT, max_size=4), max_size=4))
def test_free_text_never_reaches_the_summary(name: str, issues: list[dict[str, str]]) -> None:
    """Whatever a server writes around them, a quoted name is not kept: only codes and
    paths made of letters, digits and path punctuation, without spaces, survive."""
    body = outcome(
        *(
            {**issue, "diagnostics": name, "details": {"text": name}, "severity": "error"}
            for issue in issues
        )
    )
    assert name not in outcome_summary(body)


@pytest.mark.parametrize(
    "body", [None, "text", [], {"resourceType": "Patient"}, outcome("x", {"issue": 3})]
)
def test_a_body_that_is_not_an_outcome_says_nothing(body: object) -> None:
    assert outcome_summary(body) == ""
