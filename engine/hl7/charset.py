"""MSH-18 character sets mapped to Python codecs, and decoding with a route's policy.

The bytes stored and forwarded are the bytes received; decoding only serves reading and
rewriting fields. A message is re-encoded with the codec it was decoded with, so an
unchanged message round-trips byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import EngineError
from engine.hl7.codes import shown
from engine.hl7.header import header_field

# HL7 table 0211 (and the spellings met in French feeds) → Python codec names, as
# `codecs.lookup(...).name` spells them: the name is what a decoded message says it used.
MSH18_CODECS: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "ISO IR100": "iso8859-1",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "CP1252": "cp1252",
    "WINDOWS-1252": "cp1252",
    **{f"8859/{n}": f"iso8859-{n}" for n in (*range(1, 10), 15)},
}
# Bytes 0x80-0x9F decode to C1 controls in ISO 8859-1; in a French feed they are almost
# always windows-1252 letters or punctuation (œ, ’, €) sent under an 8859/1 label.
_C1_CONTROLS = re.compile("[\x80-\x9f]")


class CharsetError(EngineError):
    """A message could not be decoded: the text names the charset, never the content."""

    def __init__(self, text: str, *, unknown_label: bool) -> None:
        super().__init__(text)
        self.unknown_label = unknown_label


@dataclass(frozen=True, slots=True)
class CharsetPolicy:
    """A route's choices: a forced charset, one for an empty MSH-18, a fallback."""

    forced: str | None = None
    default: str = "8859/1"
    fallback: str | None = None


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    codec: str


def codec_for(label: str) -> str:
    """The Python codec for an MSH-18 value of the table, or `CharsetError`.

    Only the table's names reach `codecs`: the registry also answers to names that are not
    charsets at all (`undefined` and `punycode` raise on any input, `idna` and `utf-16`
    misread a message, a NUL byte makes the lookup raise `ValueError`), and a sender must
    not be able to pick one."""
    name = MSH18_CODECS.get(label.strip().upper())
    if name is None:
        raise CharsetError(
            f"unsupported character set: {shown(label.strip(), False)}", unknown_label=True
        )
    return name


def is_known(label: str) -> bool:
    return label.strip().upper() in MSH18_CODECS


def declared_charset(raw: bytes) -> str:
    """MSH-18 read straight from the bytes (the header is ASCII in every charset used)."""
    return header_field(raw, 18).split(b"^")[0].decode("latin-1").strip()


def decode(raw: bytes, policy: CharsetPolicy) -> Decoded:
    """Decode a received message according to MSH-18 and the route's policy."""
    label = policy.forced or declared_charset(raw) or policy.default
    codec = codec_for(label)
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError:
        if policy.fallback is None:
            raise CharsetError(
                f"message bytes are not valid {label.strip()}", unknown_label=False
            ) from None
        codec = codec_for(policy.fallback)
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            raise CharsetError(
                f"message bytes are valid neither as {label.strip()} nor as "
                f"{policy.fallback.strip()}",
                unknown_label=False,
            ) from None
    if codec == "iso8859-1" and _C1_CONTROLS.search(text):
        try:
            return Decoded(raw.decode("cp1252"), "cp1252")
        except UnicodeDecodeError:
            pass
    return Decoded(text, codec)
