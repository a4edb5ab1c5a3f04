"""The sans-IO reader: every layout, each line break, the envelopes, and refusals."""

from __future__ import annotations

import pytest

from engine.mllp.codec import encode_frame
from engine.tools.replay.reader import Layout, ReadError, read_messages

A = [b"MSH|^~\\&|APP|FAC|||20240101||ADT^A28|ID1|P|2.5", b"PID|||1^^^H^PI", b"PV1|1|N"]
B = [b"MSH|^~\\&|APP|FAC|||20240101||ADT^A31|ID2|P|2.5", b"PID|||2^^^H^PI"]


def cr(segments: list[bytes]) -> bytes:
    return b"\r".join(segments) + b"\r"


def payloads(data: bytes) -> list[bytes]:
    return [message.payload for message in read_messages(data).messages]


@pytest.mark.parametrize("newline", [b"\r", b"\n", b"\r\n"])
def test_one_message_any_line_break_is_sent_cr_separated(newline: bytes) -> None:
    content = read_messages(newline.join(A) + newline)
    assert content.layout is Layout.TEXT
    assert [(m.position, m.payload) for m in content.messages] == [(1, cr(A))]


def test_last_segment_without_line_break_still_ends_with_cr() -> None:
    assert payloads(b"\n".join(A)) == [cr(A)]


@pytest.mark.parametrize("newline", [b"\r", b"\n", b"\r\n"])
@pytest.mark.parametrize("blank_lines", [0, 1, 3])
def test_several_messages_split_at_msh(newline: bytes, blank_lines: int) -> None:
    data = newline.join(A) + newline * (1 + blank_lines) + newline.join(B) + newline
    content = read_messages(data)
    assert [m.position for m in content.messages] == [1, 2]
    assert [m.payload for m in content.messages] == [cr(A), cr(B)]


def test_mixed_line_breaks_and_whitespace_only_lines() -> None:
    data = A[0] + b"\r\n" + A[1] + b"\n" + A[2] + b"\r  \t\r\n" + B[0] + b"\r" + B[1]
    assert payloads(data) == [cr(A), cr(B)]


def test_bytes_inside_segments_are_untouched() -> None:
    latin1 = b"PID|||1^^^H^PI||B\xc9RANGER^ZO\xc9^^^^^D~ADRUN^ZOE^ZOE^^^^L|||\\T\\ \\S\\ \\E\\"
    utf8 = "PID|||1||CHÂTEAU-LÉVÊQUE^^^^^^D".encode()
    for segment in (latin1, utf8, b"NTE|1||trailing spaces   ", b"OBX|1|TX|||a\tb"):
        assert payloads(A[0] + b"\n" + segment + b"\n") == [A[0] + b"\r" + segment + b"\r"]


def test_msh_counts_only_at_the_start_of_a_line() -> None:
    data = cr([A[0], b"NTE|1||see MSH|^~\\&| below", b"OBX|1|ST|||MSH"])
    assert len(read_messages(data).messages) == 1


def test_batch_envelopes_are_dropped() -> None:
    data = b"\n".join([b"FHS|^~\\&|APP", b"BHS|^~\\&|APP", *A, *B, b"BTS|2", b"FTS|1", b""])
    content = read_messages(data)
    assert content.layout is Layout.BATCH
    assert [m.payload for m in content.messages] == [cr(A), cr(B)]


def test_bare_batch_without_file_header() -> None:
    content = read_messages(cr([b"BHS|^~\\&|APP", *A, b"BTS|1"]))
    assert content.layout is Layout.BATCH
    assert [m.payload for m in content.messages] == [cr(A)]


@pytest.mark.parametrize("between", [b"", b"\r\n", b"\n", b"\r\n\r\n"])
def test_mllp_capture_with_or_without_newlines(between: bytes) -> None:
    data = encode_frame(cr(A)) + between + encode_frame(cr(B)) + between
    content = read_messages(data)
    assert content.layout is Layout.MLLP
    assert [(m.position, m.payload) for m in content.messages] == [(1, cr(A)), (2, cr(B))]


def test_mllp_frame_with_lf_segments_is_normalised() -> None:
    assert payloads(encode_frame(b"\n".join(A))) == [cr(A)]


def test_leading_newlines_and_utf8_bom_are_not_content() -> None:
    assert payloads(b"\xef\xbb\xbf" + cr(A)) == [cr(A)]
    assert payloads(b"\r\n" + encode_frame(cr(A))) == [cr(A)]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "no HL7 message"),
        (b"\r\n\n  \r", "no HL7 message"),
        (b"hello\nworld\n", "line 1: segment outside any message"),
        (b"PID|||1\r" + cr(A), "line 1: segment outside any message"),
        (cr(A) + b"BTS|1\rPID|||x\r", "line 5: segment outside any message"),
        (b"FHS|^~\\&\rBHS|^~\\&\rBTS|0\rFTS|1\r", "no HL7 message"),
        (encode_frame(cr(A)) + b"junk" + encode_frame(cr(B)), "4 bytes outside MLLP frames"),
        (encode_frame(cr(A)) + b"\x0b" + cr(B), "not terminated"),
        (encode_frame(b"PID|||1\r"), "frame 1, line 1: segment outside any message"),
        (encode_frame(b"\r\n"), "MLLP frame 1 holds no HL7 message"),
        (b"\x00\x01\x02binary", "segment outside any message"),
    ],
)
def test_refusals_name_the_place_not_the_content(data: bytes, reason: str) -> None:
    with pytest.raises(ReadError, match=reason) as caught:
        read_messages(data)
    assert "hello" not in str(caught.value)
