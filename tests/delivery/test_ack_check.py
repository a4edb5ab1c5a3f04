"""Reading a downstream's ACK (sans-IO): codes, correlation, and no free text kept."""

from __future__ import annotations

import pytest

from engine.delivery.ack_check import AckProblem, check_ack
from engine.delivery.destination import Outcome, Result
from tests.support.receiver import ack_bytes


@pytest.mark.parametrize(
    ("code", "error_code", "expected"),
    [
        ("AA", "", Result(Outcome.DELIVERED, "AA")),
        ("CA", "", Result(Outcome.DELIVERED, "CA")),
        ("AE", "207", Result(Outcome.RETRY, "AE", "AE (ERR 207)")),
        ("CE", "", Result(Outcome.RETRY, "CE", "CE")),
        ("AR", "200", Result(Outcome.PARK, "AR", "AR (ERR 200)")),
        ("CR", "", Result(Outcome.PARK, "CR", "CR")),
    ],
)
def test_codes(code: str, error_code: str, expected: Result) -> None:
    payload = ack_bytes("C1", code, error_code, text="MARTIN Paul né le 01/02/1950")
    assert check_ack(payload, "C1") == expected


def test_an_err_code_that_is_not_a_code_is_not_kept() -> None:
    payload = ack_bytes("C1", "AE", error_code="patient MARTIN unknown")
    assert check_ack(payload, "C1").error == "AE"


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (ack_bytes("C0"), "mismatched ACK"),
        (b"\x06", "garbled ACK: not an HL7 message"),
        (b"MSH|^~\\&|X|Y\rPID|1\r", "garbled ACK: no MSA segment"),
        (ack_bytes("C1", "ZZ"), "garbled ACK: unknown MSA-1 code"),
    ],
)
def test_answers_that_are_not_the_ack_of_the_sent_message(payload: bytes, problem: str) -> None:
    with pytest.raises(AckProblem, match=problem):
        check_ack(payload, "C1")
