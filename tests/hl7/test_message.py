"""The lazy HL7 view: fields in HL7 numbering, and text preserved around a change."""

from __future__ import annotations

import pytest

from engine.hl7.header import Header
from engine.hl7.message import Message, MessageFormatError, Separators

TEXT = (
    "MSH|^~\\&|PAS|HOSP|INS|DEST|20240101120000||ADT^A28^ADT_A05|C1|P|2.5^FRA^2.11|||AL|NE||"
    "UNICODE UTF-8\rEVN||20240101\rPID|1||12^^^HOSP^PI~34^^^X^NH||DARK^JEANNE\r"
)


def test_header_fields() -> None:
    header = Header.from_message(Message.parse(TEXT))
    assert (header.sending_application, header.sending_facility) == ("PAS", "HOSP")
    assert (header.message_type, header.trigger, header.control_id) == ("ADT", "A28", "C1")
    assert header.version == "2.5^FRA^2.11" and header.version_id == "2.5"
    assert (header.accept_ack_type, header.application_ack_type) == ("AL", "NE")
    assert header.enhanced_mode and header.charset == "UNICODE UTF-8"
    assert header.type_and_trigger == "ADT^A28"


def test_msh_field_numbering_counts_the_separator_as_msh1() -> None:
    msh = Message.parse(TEXT).msh
    assert (msh.field(1), msh.field(2), msh.field(3)) == ("|", "^~\\&", "PAS")


def test_replacing_one_field_keeps_every_other_byte() -> None:
    message = Message.parse(TEXT)
    index = next(message.indexes("PID"))
    message.replace(index, message.segment_at(index).with_field(5, "DOE^JOHN"))
    assert message.to_text() == TEXT.replace("DARK^JEANNE", "DOE^JOHN")


def test_with_field_pads_missing_fields() -> None:
    message = Message.parse("MSH|^~\\&|A\rZFD|1\r")
    segment = message.segment("ZFD").with_field(5, "INSI")
    assert segment.text == "ZFD|1||||INSI"


def test_other_separators_are_honoured() -> None:
    message = Message.parse("MSH#*~\\&#A#B\rPID#1##X*Y~Z\r")
    assert message.separators == Separators("#", "*", "~", "\\", "&")
    assert message.segment("PID").repetitions(3) == ["X*Y", "Z"]


@pytest.mark.parametrize("header", ["MSH|^~", "MSH|^~|", "MSH|^~\\", "MSH|^~\\&"])
def test_a_header_of_msh_1_and_a_short_msh_2_alone_is_read(header: str) -> None:
    # It used to be refused under 8 characters, so a short MSH-2 whose header a step
    # emptied of its other fields made a message the engine could no longer read.
    assert Message.parse(header + "\r").separators == Separators()


def test_lf_and_crlf_segment_endings_are_accepted() -> None:
    assert len(Message.parse(TEXT.replace("\r", "\n"))) == 3
    assert len(Message.parse(TEXT.replace("\r", "\r\n"))) == 3


@pytest.mark.parametrize(
    "text",
    # A short MSH-2 declaring a default character for another role (`&`, `~`) too.
    [
        "",
        "hello",
        "PID|1\r",
        "MSH|||\r",
        "MSH|\r",
        "MSH|^\r",
        "MSH\r",
        "MSHa^~\\&\r",
        "MSH|^&-|A\r",
        "MSH|&^|A\r",
    ],
)
def test_non_hl7_text_is_a_format_error(text: str) -> None:
    with pytest.raises(MessageFormatError):
        Message.parse(text)


def test_segment_lookup_matches_whole_names() -> None:
    message = Message.parse("MSH|^~\\&|A\rPIDX|1\rPID|2\r")
    assert message.segment("PID").field(1) == "2"
