"""The MLLP codec, fed in one chunk and again one byte at a time (as h11 tests its parser)."""

from __future__ import annotations

import pytest

from engine.mllp.codec import (
    NEED_DATA,
    Frame,
    FrameDecoder,
    FrameTooLarge,
    Junk,
    encode_frame,
)

MSG_A = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A28|1|P|2.5\rPID|1\r"
MSG_B = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A31|2|P|2.5\r"


def drain(decoder: FrameDecoder) -> list[object]:
    events = []
    while (event := decoder.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def feed_whole(data: bytes, max_frame_bytes: int = 1024) -> list[object]:
    decoder = FrameDecoder(max_frame_bytes)
    decoder.feed(data)
    return drain(decoder)


def feed_bytewise(data: bytes, max_frame_bytes: int = 1024) -> list[object]:
    decoder = FrameDecoder(max_frame_bytes)
    events: list[object] = []
    for i in range(len(data)):
        decoder.feed(data[i : i + 1])
        events.extend(drain(decoder))
    return events


FEEDERS = [feed_whole, feed_bytewise]


@pytest.mark.parametrize("feed", FEEDERS)
def test_one_frame(feed) -> None:
    assert feed(encode_frame(MSG_A)) == [Frame(MSG_A)]


@pytest.mark.parametrize("feed", FEEDERS)
def test_several_frames_in_one_read(feed) -> None:
    assert feed(encode_frame(MSG_A) + encode_frame(MSG_B)) == [Frame(MSG_A), Frame(MSG_B)]


def test_split_at_every_byte_gives_the_same_frames() -> None:
    stream = encode_frame(MSG_A) + encode_frame(MSG_B)
    for cut in range(len(stream) + 1):
        decoder = FrameDecoder()
        decoder.feed(stream[:cut])
        events = drain(decoder)
        decoder.feed(stream[cut:])
        events += drain(decoder)
        assert events == [Frame(MSG_A), Frame(MSG_B)], cut


@pytest.mark.parametrize("feed", FEEDERS)
def test_junk_before_and_between_frames_is_counted_not_kept(feed) -> None:
    events = feed(b"GET / HTTP/1.0" + encode_frame(MSG_A) + b"xyz" + encode_frame(MSG_B))
    frames = [event for event in events if isinstance(event, Frame)]
    junk = sum(event.size for event in events if isinstance(event, Junk))
    assert frames == [Frame(MSG_A), Frame(MSG_B)]
    assert junk == len(b"GET / HTTP/1.0") + 3


@pytest.mark.parametrize("feed", FEEDERS)
def test_line_breaks_between_frames_are_not_junk(feed) -> None:
    stream = encode_frame(MSG_A) + b"\r\n" + encode_frame(MSG_B) + b"\n"
    assert feed(stream) == [Frame(MSG_A), Frame(MSG_B)]


@pytest.mark.parametrize("feed", FEEDERS)
def test_missing_trailing_cr_after_end_block_still_ends_the_frame(feed) -> None:
    assert feed(b"\x0b" + MSG_A + b"\x1c" + b"\x0b" + MSG_B + b"\x1c") == [
        Frame(MSG_A),
        Frame(MSG_B),
    ]


@pytest.mark.parametrize("feed", FEEDERS)
def test_payload_without_trailing_segment_cr_is_kept_as_is(feed) -> None:
    payload = MSG_A.rstrip(b"\r")
    assert feed(encode_frame(payload)) == [Frame(payload)]


@pytest.mark.parametrize("feed", FEEDERS)
def test_oversize_frame_is_reported_once_and_skipped(feed) -> None:
    big = b"MSH|" + b"x" * 300
    events = feed(encode_frame(big) + encode_frame(MSG_B), max_frame_bytes=100)
    assert len(events) == 2
    too_large, frame = events
    assert isinstance(too_large, FrameTooLarge)
    assert too_large.head.startswith(b"MSH|xxx")
    assert too_large.size > 100
    assert frame == Frame(MSG_B)


@pytest.mark.parametrize("feed", FEEDERS)
def test_a_block_after_an_oversize_block_given_up_is_not_lost(feed) -> None:
    # Read byte by byte, the decoder used to skip the new block along with the oversize one.
    events = feed(b"\x0bMSH|" + b"x" * 300 + encode_frame(MSG_B), max_frame_bytes=100)
    assert events[-1] == Frame(MSG_B)


@pytest.mark.parametrize("feed", FEEDERS)
def test_an_oversize_block_given_up_is_too_large_however_it_is_read(feed) -> None:
    # Read at once, such a block used to be counted as junk: no NACK, unlike byte by byte.
    events = feed(
        encode_frame(MSG_A) + b"\x0bMSH|" + b"x" * 300 + b"\x0b" * 3 + encode_frame(MSG_B),
        max_frame_bytes=100,
    )
    reported = [event for event in events if not isinstance(event, Junk)]
    assert [type(event) for event in reported] == [Frame, FrameTooLarge, Frame]
    assert reported[1].head.startswith(b"MSH|xxx") and b"\x0b" not in reported[1].head
    assert sum(event.size for event in events if isinstance(event, Junk)) == 3


def test_the_head_of_an_oversize_block_stops_at_its_end() -> None:
    # It used to run on into the next block when the whole block came in one read.
    big = b"MSH|" + b"x" * 300
    too_large, frame = feed_whole(encode_frame(big) + encode_frame(MSG_B), max_frame_bytes=100)
    assert too_large == FrameTooLarge(big, len(big))
    assert frame == Frame(MSG_B)


def test_oversize_frame_never_buffers_much_more_than_the_limit() -> None:
    decoder = FrameDecoder(100)
    decoder.feed(b"\x0b")
    reported = []
    for _ in range(1000):
        decoder.feed(b"y" * 50)
        reported.extend(drain(decoder))
        assert len(decoder._buffer) <= 150
    decoder.feed(b"\x1c\r" + encode_frame(MSG_A))
    reported.extend(drain(decoder))
    assert [type(event) for event in reported] == [FrameTooLarge, Frame]


def test_in_frame_tells_a_started_frame_from_an_idle_connection() -> None:
    decoder = FrameDecoder()
    assert not decoder.in_frame
    decoder.feed(b"\x0bMSH|")
    assert drain(decoder) == []
    assert decoder.in_frame
    decoder.feed(b"\x1c\r")
    assert drain(decoder) == [Frame(b"MSH|")]
    assert not decoder.in_frame


def test_commit_acknowledgement_blocks_are_ordinary_frames() -> None:
    assert feed_whole(b"\x0b\x06\x1c\x0d\x0b\x15\x1c\x0d") == [Frame(b"\x06"), Frame(b"\x15")]


def test_fuzzed_input_only_ever_yields_events() -> None:
    import random

    rng = random.Random(1234)
    alphabet = [b"\x0b", b"\x1c", b"\r", b"\n", b"M", b"|", b"\xe9"]
    for _ in range(300):
        decoder = FrameDecoder(64)
        for _ in range(rng.randrange(1, 40)):
            decoder.feed(b"".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 20))))
            for event in drain(decoder):
                assert isinstance(event, Frame | Junk | FrameTooLarge)
                if isinstance(event, Frame):
                    assert b"\x0b" not in event.payload and b"\x1c" not in event.payload
                    assert len(event.payload) <= 64


@pytest.mark.parametrize("feed", FEEDERS)
def test_a_block_given_up_for_a_new_start_byte_is_junk(feed) -> None:
    events = feed(b"\x0bMSH|half" + encode_frame(MSG_A))
    assert events[-1] == Frame(MSG_A)
    assert all(isinstance(event, Junk) for event in events[:-1])


@pytest.mark.parametrize("feed", FEEDERS)
def test_a_flood_of_start_bytes_is_counted_in_full(feed) -> None:
    events = feed(b"\x0b" * 5000 + encode_frame(MSG_A))
    assert events[-1] == Frame(MSG_A)
    assert sum(event.size for event in events[:-1] if isinstance(event, Junk)) == 5000


def test_a_flood_of_start_bytes_read_at_once_is_one_event() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x0b" * 40_000 + encode_frame(MSG_A))
    assert drain(decoder) == [Junk(40_000), Frame(MSG_A)]
