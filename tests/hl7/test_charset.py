"""MSH-18 mapping and the route's charset policy."""

from __future__ import annotations

import pytest

from engine.hl7.charset import CharsetError, CharsetPolicy, codec_for, declared_charset, decode

HEADER = "MSH|^~\\&|A|B|C|D|20240101||ADT^A28|1|P|2.5||||||{}\rPID|1||||{}\r"


def message(charset: str, name: str, encoding: str) -> bytes:
    return HEADER.format(charset, name).encode(encoding)


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("ASCII", "ascii"),
        ("8859/1", "iso8859-1"),
        ("8859/15", "iso8859-15"),
        ("UNICODE UTF-8", "utf-8"),
        ("unicode utf-8", "utf-8"),
        ("ISO IR100", "iso8859-1"),
    ],
)
def test_msh18_values_map_to_codecs(label: str, codec: str) -> None:
    assert codec_for(label) == codec


def test_declared_charset_reads_msh18_and_ignores_components() -> None:
    assert declared_charset(message("UNICODE UTF-8^x", "A", "ascii")) == "UNICODE UTF-8"
    assert declared_charset(b"MSH|^~\\&|A\r") == ""
    assert declared_charset(b"not hl7") == ""


def test_latin1_and_utf8_decode_to_the_same_text() -> None:
    latin = decode(message("8859/1", "HÉLÈNE", "latin-1"), CharsetPolicy())
    utf8 = decode(message("UNICODE UTF-8", "HÉLÈNE", "utf-8"), CharsetPolicy())
    assert "HÉLÈNE" in latin.text and "HÉLÈNE" in utf8.text
    assert (latin.codec, utf8.codec) == ("iso8859-1", "utf-8")


def test_windows_1252_bytes_under_an_8859_1_label_are_read_as_windows_1252() -> None:
    decoded = decode(message("8859/1", "CŒUR", "cp1252"), CharsetPolicy())
    assert "CŒUR" in decoded.text
    assert decoded.codec == "cp1252"
    assert decoded.text.encode(decoded.codec) == message("8859/1", "CŒUR", "cp1252")


def test_invalid_utf8_is_a_charset_error_without_content() -> None:
    raw = message("UNICODE UTF-8", "HÉLÈNE", "latin-1")
    with pytest.raises(CharsetError) as caught:
        decode(raw, CharsetPolicy())
    assert "HÉL" not in str(caught.value) and not caught.value.unknown_label


def test_fallback_charset_rescues_a_mislabelled_message() -> None:
    raw = message("UNICODE UTF-8", "HÉLÈNE", "latin-1")
    decoded = decode(raw, CharsetPolicy(fallback="8859/1"))
    assert "HÉLÈNE" in decoded.text


def test_forced_charset_wins_over_msh18() -> None:
    raw = message("UNICODE UTF-8", "HÉLÈNE", "latin-1")
    assert "HÉLÈNE" in decode(raw, CharsetPolicy(forced="8859/1")).text


def test_empty_msh18_uses_the_route_default() -> None:
    raw = message("", "HÉLÈNE", "utf-8")
    assert "HÉLÈNE" in decode(raw, CharsetPolicy(default="UNICODE UTF-8")).text


def test_unknown_label_is_flagged() -> None:
    with pytest.raises(CharsetError) as caught:
        decode(message("KLINGON", "A", "ascii"), CharsetPolicy())
    assert caught.value.unknown_label


@pytest.mark.parametrize(
    "label", ["undefined", "punycode", "idna", "utf-16", "latin-1", "rot13", "8859/1\x00", "\x00"]
)
def test_only_the_table_reaches_a_codec(label: str) -> None:
    """Python's codec registry answers to names that are no charset, or raises oddly."""
    with pytest.raises(CharsetError) as caught:
        decode(message(label, "A", "latin-1"), CharsetPolicy())
    assert caught.value.unknown_label
    assert str(caught.value) == f"unsupported character set: unknown ({len(label)} characters)"
