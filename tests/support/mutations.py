"""Header mutations of the messages of hl7_samples/, drawn deterministically from a seed.

A sample is one of those messages with a control id of its own (`F000042`) and, most often,
MSH-18 replaced by what a broken or hostile sender might put there (a Python codec name,
NUL or control bytes, a known label mis-spelt); otherwise another header field mutated:
MSH-10 with bytes outside ASCII, MSH-9, MSH-12, MSH-15/16, the encoding characters, the
header cut short, one byte of it changed. The same seed gives the same samples, so a
failure found once is found again. No mutation writes the MLLP framing bytes (0x0B, 0x1C):
over MLLP each sample is exactly one block.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError
from engine.hl7.charset import MSH18_CODECS
from engine.hl7.header import Header
from engine.hl7.message import Message
from engine.tools.replay.files import expand_paths, load_files

SAMPLES = Path(__file__).resolve().parents[2] / "hl7_samples"
# Names Python's codec registry knows that are no HL7 charset: some raise on any input
# (`undefined`, `punycode`), some are not text encodings (`rot13`, `zlib`), some misread
# a message (`idna`, `utf-16`, `unicode_escape`), and some are charsets HL7 spells otherwise.
CODEC_NAMES = (
    "undefined", "punycode", "idna", "utf-16", "utf-16-le", "utf_32", "utf-7", "utf-8-sig",
    "unicode_escape", "raw_unicode_escape", "rot13", "rot_13", "base64", "zlib", "bz2", "hex",
    "uu", "quopri", "mbcs", "oem", "cp037", "cp500", "latin-1", "latin_1", "iso2022_jp",
    "shift_jis", "big5", "koi8-r", "mac-roman", "palmos", "charmap", "ascii ", " UTF_8",
)  # fmt: skip
_ODD_BYTES = bytes([0, 9, 10, 13, 27, 32, 127, 0x80, 0x85, 0x9F, 0xA0, 0xC3, 0xE9, 0xFF])
_FRAMING = bytes([0x0B, 0x1C])


@dataclass(frozen=True, slots=True)
class Sample:
    number: int
    mutation: str  # what was changed, to name a failing sample
    payload: bytes


def load_messages() -> list[bytes]:
    """Every message of hl7_samples/ (files holding several give each one)."""
    files, problems = load_files(expand_paths([str(SAMPLES)]))
    assert not problems, problems
    return [message.payload for file in files for message in file.messages]


def samples(count: int, seed: int, messages: list[bytes] | None = None) -> Iterator[Sample]:
    """`count` mutated samples; the same seed gives the same bytes."""
    pool = messages or load_messages()
    rng = random.Random(seed)
    for number in range(count):
        fields = _header_fields(rng.choice(pool))
        fields[9] = f"F{number:06d}".encode()
        name, _, mutate = rng.choices(_MUTATIONS, weights=_WEIGHTS)[0]
        payload = mutate(rng, fields)
        yield Sample(number, name, payload.translate(None, _FRAMING))


def may_go_unanswered(payload: bytes) -> bool:
    """An ACK, or an MSH-15 (NE, ER, SU) asking for no answer in some case: the engine
    rightly sends nothing back to such a message."""
    try:
        header = Header.from_message(Message.parse(payload.decode("latin-1")))
    except EngineError:
        return False
    return header.message_type == "ACK" or header.accept_ack_type.upper() in ("NE", "ER", "SU")


def _header_fields(message: bytes) -> list[bytes]:
    """MSH split on `|` and padded to MSH-18; the rest of the message as the last item."""
    end = message.find(b"\r")
    header, rest = message[:end], message[end:]
    fields = header.split(b"|")
    fields += [b""] * (18 - len(fields))
    return [*fields, rest]


def _joined(fields: list[bytes]) -> bytes:
    return b"|".join(fields[:-1]) + fields[-1]


def _odd_text(rng: random.Random, longest: int = 12) -> bytes:
    alphabet = _ODD_BYTES + b"AZaz09^~&\\/- "
    return bytes(rng.choice(alphabet) for _ in range(rng.randint(0, longest)))


Mutation = Callable[[random.Random, list[bytes]], bytes]


def _set(index: int, value: Callable[[random.Random], bytes]) -> Mutation:
    def mutate(rng: random.Random, fields: list[bytes]) -> bytes:
        fields[index] = value(rng)
        return _joined(fields)

    return mutate


def _codec_name(rng: random.Random) -> bytes:
    name = rng.choice(CODEC_NAMES)
    return (name.upper() if rng.random() < 0.3 else name).encode()


def _known_spelt_oddly(rng: random.Random) -> bytes:
    label = rng.choice(list(MSH18_CODECS)).encode()
    at = rng.randint(0, len(label))
    odd = rng.choice([b"\x00", b"\x1b", b"\xa0", b"^x", b"~8859/1", b"  ", b"\x00\x00", b""])
    return label[:at] + odd + label[at:]


def _control_id(rng: random.Random, fields: list[bytes]) -> bytes:
    accent = rng.choice(["É", "é", "Œ", "€", "ß", "\u2019"])
    encoding = rng.choice(["latin-1", "utf-8", "cp1252"])
    tail = accent.encode(encoding, errors="replace")
    fields[9] = rng.choice([tail + fields[9], fields[9] + tail, b"", fields[9] * 30])
    return _joined(fields)


def _encoding_characters(rng: random.Random, fields: list[bytes]) -> bytes:
    fields[1] = rng.choice([b"", b"^", b"^~", b"^~\\&#", b"^^^^", b"||||", _odd_text(rng, 5)])
    return _joined(fields)


def _field_separator(rng: random.Random, fields: list[bytes]) -> bytes:
    payload = _joined(fields)
    return payload[:3] + bytes([rng.choice(_ODD_BYTES + b"^#!")]) + payload[4:]


def _cut(rng: random.Random, fields: list[bytes]) -> bytes:
    header = b"|".join(fields[:-1])
    return header[: rng.randint(0, len(header))] + rng.choice([b"", b"\r", fields[-1]])


def _flip(rng: random.Random, fields: list[bytes]) -> bytes:
    header = bytearray(b"|".join(fields[:-1]))
    for _ in range(rng.randint(1, 3)):
        header[rng.randrange(len(header))] = rng.randrange(256)
    return bytes(header) + fields[-1]


_MUTATIONS: list[tuple[str, int, Mutation]] = [
    ("MSH-18 a Python codec name", 25, _set(17, _codec_name)),
    ("MSH-18 odd bytes", 15, _set(17, _odd_text)),
    ("MSH-18 a known label spelt oddly", 10, _set(17, _known_spelt_oddly)),
    ("MSH-10 outside ASCII, empty or long", 12, _control_id),
    (
        "MSH-9 odd",
        6,
        _set(8, lambda rng: rng.choice([b"", b"ADT", b"ACK", b"^A28", b"ADT^", _odd_text(rng)])),
    ),
    ("MSH-12 odd", 5, _set(11, lambda rng: rng.choice([b"", b"3.0", b"2", _odd_text(rng)]))),
    (
        "MSH-15 odd",
        5,
        _set(14, lambda rng: rng.choice([b"AL", b"NE", b"ER", b"SU", b"XX", _odd_text(rng)])),
    ),
    ("MSH-2 odd", 5, _encoding_characters),
    ("MSH-1 odd", 3, _field_separator),
    ("header cut", 5, _cut),
    ("header bytes changed", 9, _flip),
]
_WEIGHTS = [weight for _, weight, _ in _MUTATIONS]
