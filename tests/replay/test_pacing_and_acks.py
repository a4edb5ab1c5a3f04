"""`--rate` slots from a given clock, ACK reading and percentiles, without sockets."""

from __future__ import annotations

import pytest

from engine.hl7.ack import AckCode
from engine.tools.replay.acks import AckFormatError, read_ack
from engine.tools.replay.pacing import Pacer
from engine.tools.replay.summary import percentile


def test_slots_are_spaced_by_the_rate_across_callers() -> None:
    pacer = Pacer(rate=4)  # one message every 0.25 s, whichever connection asks
    assert [pacer.reserve(now=10.0) for _ in range(4)] == [0.0, 0.25, 0.5, 0.75]


def test_a_late_caller_does_not_get_a_burst_to_catch_up() -> None:
    pacer = Pacer(rate=2)
    assert pacer.reserve(now=0.0) == 0.0
    assert pacer.reserve(now=5.0) == 0.0  # the receiver was slow: no backlog of slots
    assert pacer.reserve(now=5.0) == 0.5


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(0)


def test_ack_fields_are_read() -> None:
    ack = read_ack(b"MSH|^~\\&|R|F|S|F|20240101||ACK^A28^ACK|9|P|2.5\rMSA|AE|SMP1|Bad value\r")
    assert (ack.code, ack.control_id, ack.text, ack.accepted) == (
        AckCode.AE,
        "SMP1",
        "Bad value",
        False,
    )
    assert read_ack(b"MSH|^~\\&|R\nMSA|CA|X\n").accepted


def test_ack_text_is_decoded_by_its_charset_and_bounded() -> None:
    utf8 = "MSH|^~\\&|R|F|S|F|20240101||ACK|9|P|2.5|||||FRA|UNICODE UTF-8\rMSA|AR|X|Refusé\r"
    assert read_ack(utf8.encode()).text == "Refusé"
    latin1 = "MSH|^~\\&|R|F|S|F|20240101||ACK|9|P|2.5\rMSA|AR|X|Refusé" + "!" * 200
    assert read_ack(latin1.encode("latin-1")).text == ("Refusé" + "!" * 200)[:80]
    unknown_label = "MSH|^~\\&|R|F|S|F|20240101||ACK|9|P|2.5|||||FRA|KLINGON\rMSA|AA|X\r"
    assert read_ack(unknown_label.encode()).code is AckCode.AA


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "not an HL7 message"),
        (b"MSH|^~\\&|R\r", "no MSA segment"),
        (b"MSH|^~\\&|R\rMSA|OK|X\r", "unknown MSA-1"),
        (b"MSH|^~\\&|R\rMSA||X\r", "unknown MSA-1"),
    ],
)
def test_answers_that_are_no_ack(payload: bytes, reason: str) -> None:
    with pytest.raises(AckFormatError, match=reason):
        read_ack(payload)


def test_nearest_rank_percentiles() -> None:
    values = [float(n) for n in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99)) == (50.0, 99.0)
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None
