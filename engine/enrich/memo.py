"""Enrichment already worked out: a feed repeats its patients, and for the same PID and ZFD,
the same event and the same INSi answer, what the step does to a message is a pure function.

The step records what it did (the PID and ZFD it left, the outcome) with what that depended
on: the search it made and INSi's answer, or no search at all. A later message with the same
key gets the same effect when INSi's answer is still the same (the search is made every
time, so a verification still needs a fresh answer); anything else is worked out again.
Reading, deciding and writing a PID costs several hundred microseconds; a replay, a few.
Bounded: the least recently used entries go first.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from engine.enrich.pid_writer import put_zfd
from engine.hl7.header import Header
from engine.hl7.message import Message, Segment
from engine.ins.outcome import SearchOutcome
from engine.ins.traits import IdentityTraits

MEMO_SIZE = 10_000
MemoKey = tuple[str, str, str, str, str | None, dt.date]


@dataclass(frozen=True, slots=True)
class Search:
    """The search an identity needs: its traits, and whether it verifies a carried INS."""

    traits: IdentityTraits
    verifying: bool


@dataclass(frozen=True, slots=True)
class Effect:
    """What the step did to a message, and what that depended on."""

    search: Search | None  # None: decided without INSi
    answer: SearchOutcome | None  # INSi's answer it depended on
    pid: str  # the PID the step left
    zfd: str | None  # the ZFD the step left; None when it left the message's own alone
    record: dict[str, Any]  # the outcome record (control id and calls: the first message's)

    def holds_for(self, found: SearchOutcome | None) -> bool:
        """Whether this effect is what the step would do given INSi's answer `found`."""
        if found is None or self.answer is None:
            return found is None and self.search is None
        return found.same_answer(self.answer)


def memo_key(message: Message, header: Header, pid_index: int, today: dt.date) -> MemoKey:
    """Everything the step reads of a message: its type and event, its delimiters, its one
    PID and its first ZFD; and today's date, against which a birth date is checked."""
    zfd = message.segment("ZFD")
    return (
        header.message_type,
        header.trigger,
        message.separators.field + message.separators.encoding_characters,
        message.texts[pid_index],
        None if zfd is None else zfd.text,
        today,
    )


def replay(message: Message, pid_index: int, effect: Effect) -> None:
    """Do to `message` what the step did to the message the effect was recorded from."""
    if message.texts[pid_index] != effect.pid:
        message.replace(pid_index, Segment(effect.pid, message.separators))
    if effect.zfd is not None:
        put_zfd(message, pid_index, Segment(effect.zfd, message.separators))


class EnrichMemo:
    """Effects by key, bounded."""

    def __init__(self, size: int = MEMO_SIZE) -> None:
        self._size = size
        self._effects: OrderedDict[MemoKey, Effect] = OrderedDict()

    def get(self, key: MemoKey) -> Effect | None:
        effect = self._effects.get(key)
        if effect is not None:
            self._effects.move_to_end(key)
        return effect

    def put(self, key: MemoKey, effect: Effect) -> None:
        self._effects[key] = effect
        self._effects.move_to_end(key)
        if len(self._effects) > self._size:
            self._effects.popitem(last=False)
