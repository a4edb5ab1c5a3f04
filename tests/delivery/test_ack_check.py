"""Reading a downstream's ACK (sans-IO): codes, correlation, and no free text kept."""

from __future__ import annotations

import pytest

from engine.delivery.ack_check import AckProblem, MismatchedAck, check_ack
from engine.delivery.destination import Outcome, Result
from engine.testing.receiver import ack_bytes
from tests.support.messages import adt

SENT = adt("C1")


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
    assert check_ack(payload, SENT) == expected


def test_an_err_code_that_is_not_a_code_is_not_kept() -> None:
    payload = ack_bytes("C1", "AE", error_code="patient MARTIN unknown")
    assert check_ack(payload, SENT).error == "AE"


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
        check_ack(payload, SENT)


def ack_echoing(control_id: bytes, charset: bytes = b"") -> bytes:
    """An AA whose MSA-2 holds these bytes, with this MSH-18 (none by default)."""
    msh = b"MSH|^~\\&|DOWN|TEST|INS-ENGINE|TEST|20240101000000||ACK^A28^ACK|A1|P|2.5"
    return msh + (b"||||||" + charset if charset else b"") + b"\rMSA|AA|" + control_id + b"\r"


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        # The bytes as sent (python-hl7 decodes and encodes with one codec of its own).
        (adt("CAFÉ-1", charset="UNICODE UTF-8", encoding="utf-8"), ack_echoing("CAFÉ-1".encode())),
        (adt("CAFÉ-1"), ack_echoing("CAFÉ-1".encode("latin-1"))),
        # Read in the message's charset, written in another: UTF-8, Latin-1, windows-1252.
        (adt("CAFÉ-1"), ack_echoing("CAFÉ-1".encode())),
        (adt("CAFÉ-1", charset="UNICODE UTF-8", encoding="utf-8"), ack_echoing(b"CAF\xc9-1")),
        (adt("CŒUR-1", charset="8859/15", encoding="iso8859-15"), ack_echoing("CŒUR-1".encode())),
        (
            adt("€-1", charset="UNICODE UTF-8", encoding="utf-8"),
            ack_echoing("€-1".encode("iso8859-15"), b"8859/15"),
        ),
        # UTF-8 read as Latin-1, then written as UTF-8: what a receiver's log would show.
        (
            adt("CAFÉ-1", charset="UNICODE UTF-8", encoding="utf-8"),
            ack_echoing("CAFÉ-1".encode().decode("latin-1").encode()),
        ),
    ],
)
def test_a_control_id_echoed_in_another_charset_still_matches(sent: bytes, echoed: bytes) -> None:
    assert check_ack(echoed, sent) == Result(Outcome.DELIVERED, "AA")


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        (adt("CAFÉ-1"), ack_echoing("CAFÈ-1".encode())),
        (adt("CAFÉ-1"), ack_echoing(b"CAF?-1")),  # a receiver that replaced what it could not read
        (adt("C1"), ack_echoing(b"c1")),
        (adt("C1"), ack_echoing(b"C1 ")),
    ],
)
def test_another_control_id_does_not_match_in_any_charset(sent: bytes, echoed: bytes) -> None:
    with pytest.raises(MismatchedAck):
        check_ack(echoed, sent)
