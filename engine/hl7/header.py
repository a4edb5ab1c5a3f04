"""The MSH fields the engine acts on, read once per message."""

from __future__ import annotations

from dataclasses import dataclass

from engine.hl7.codes import shown_type
from engine.hl7.message import Message, Separators, component


@dataclass(frozen=True, slots=True)
class Header:
    """MSH fields needed to route, deduplicate and acknowledge a message."""

    separators: Separators
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_type: str  # MSH-9.1, e.g. ADT
    trigger: str  # MSH-9.2, e.g. A28
    control_id: str  # MSH-10
    processing_id: str  # MSH-11 as received
    version: str  # MSH-12 as received, e.g. 2.5^FRA^2.11
    accept_ack_type: str  # MSH-15
    application_ack_type: str  # MSH-16
    charset: str  # MSH-18 as received

    @classmethod
    def from_message(cls, message: Message) -> Header:
        fields = message.msh.fields
        count = len(fields)

        def field(number: int) -> str:
            return fields[number] if number < count else ""

        component_separator = message.separators.component
        message_type = field(9)
        return cls(
            separators=message.separators,
            sending_application=field(3),
            sending_facility=field(4),
            receiving_application=field(5),
            receiving_facility=field(6),
            message_type=component(message_type, 1, component_separator),
            trigger=component(message_type, 2, component_separator),
            control_id=field(10),
            processing_id=field(11),
            version=field(12),
            accept_ack_type=field(15),
            application_ack_type=field(16),
            charset=field(18),
        )

    @property
    def type_and_trigger(self) -> str:
        """`ADT^A28`: the form route filters are written in."""
        return f"{self.message_type}^{self.trigger}" if self.trigger else self.message_type

    @property
    def shown_type(self) -> str:
        """`type_and_trigger` as logs may show it: unknown codes by their length only."""
        return shown_type(self.type_and_trigger)

    @property
    def enhanced_mode(self) -> bool:
        """HL7 enhanced acknowledgement mode: MSH-15 or MSH-16 valued."""
        return bool(self.accept_ack_type or self.application_ack_type)

    @property
    def version_id(self) -> str:
        """MSH-12.1, e.g. 2.5."""
        return component(self.version, 1, self.separators.component)


def header_field(raw: bytes, number: int) -> bytes:
    """MSH-`number` (2 or more) read straight from a message's bytes, without decoding or
    parsing it (the header is ASCII in every charset used); b"" when absent."""
    end = raw.find(b"\r")
    header = raw[: end if end != -1 else len(raw)]
    newline = header.find(b"\n")
    if newline != -1:
        header = header[:newline]
    if not header.startswith(b"MSH") or len(header) < 4:
        return b""
    fields = header.split(header[3:4])
    # fields[0] is "MSH", fields[1] MSH-2: MSH-n is fields[n - 1].
    return fields[number - 1] if len(fields) >= number else b""


def with_control_id_suffix(raw: bytes, suffix: str) -> bytes:
    """The message's bytes with `suffix` (ASCII) appended to MSH-10, every other byte as it
    was (the header is ASCII in every charset used, so no decoding is needed)."""
    end = len(raw)
    for terminator in (b"\r", b"\n"):
        found = raw.find(terminator)
        if found != -1:
            end = min(end, found)
    fields = raw[:end].split(raw[3:4])
    fields += [b""] * (10 - len(fields))
    fields[9] += suffix.encode("ascii")  # fields[n - 1] is MSH-n
    return raw[3:4].join(fields) + raw[end:]
