"""Building a RoutedMessage from bytes exactly as the router does: decode, parse, header."""

from engine.hl7.charset import CharsetPolicy, decode
from engine.hl7.header import Header
from engine.hl7.message import Message
from engine.steps.pipeline import RoutedMessage


def routed_from(raw: bytes, route: str = "test") -> RoutedMessage:
    decoded = decode(raw, CharsetPolicy())
    message = Message.parse(decoded.text)
    return RoutedMessage(1, route, raw, decoded.codec, message, Header.from_message(message))
