"""Header values a sender chooses, shown in logs and ACK texts only when they are known codes.

A sender may put anything in MSH-9 or MSH-18: a name, a terminal control sequence, a
kilobyte of text. The engine repeats such a value only when it is a known code (a message
type of HL7 table 0076, an event code shaped like those of table 0003, a character set the
engine knows); anything else is shown as `unknown (N characters)`, which tells an operator
what is wrong without repeating what the sender wrote.
"""

from __future__ import annotations

import re

# HL7 table 0076 (message types, v2.5).
MESSAGE_TYPES = frozenset(
    """
    ACK ADR ADT BAR BPS BRP BRT BTS CCF CCI CCM CCQ CCU CQU CRM CSU DFT DOC DSR EAC EAN EAR
    EHC ESR ESU INR INU LSR LSU MDM MFD MFK MFN MFQ MFR NMD NMQ NMR OMB OMD OMG OMI OML OMN
    OMP OMS OPL OPR OPU ORA ORB ORD ORF ORG ORI ORL ORM ORN ORP ORR ORS ORU OSQ OSR OUL PEX
    PGL PIN PMU PPG PPP PPR PPT PPV PRR PTR QBP QCK QCN QRY QSB QSX QVR RAR RAS RCI RCL RDE
    RDR RDS RDY REF RER RGR RGV ROR RPA RPI RPL RPR RQA RQC RQI RQP RRA RRD RRE RRG RRI RSP
    RTB SCN SDN SDR SIU SLN SLR SMD SQM SQR SRM SRR SSR SSU STC STI SUR TBR TCR TCU UDM VXQ
    VXR VXU VXX
    """.split()
)
_SITE_MESSAGE_TYPE = re.compile(r"Z[A-Z0-9]{2}")  # site-defined types start with Z
_TRIGGER_EVENT = re.compile(r"[A-Z][0-9]{2}")  # table 0003: A01, R01, O01, Z99 (PAM FR)...


def shown(value: str, known: bool) -> str:
    """`value` if it is known, otherwise only its length."""
    return value if known else f"unknown ({len(value)} characters)"


def known_message_type(value: str) -> bool:
    return value in MESSAGE_TYPES or _SITE_MESSAGE_TYPE.fullmatch(value) is not None


def known_trigger(value: str) -> bool:
    return _TRIGGER_EVENT.fullmatch(value) is not None


def shown_type(type_and_trigger: str) -> str:
    """`ADT^A28` as logs and consoles may show it: each part known, or its length."""
    message_type, caret, trigger = type_and_trigger.partition("^")
    first = shown(message_type, known_message_type(message_type))
    return f"{first}^{shown(trigger, known_trigger(trigger))}" if caret else first
