"""The outcome of a whole identity search, as the enrichment step sees and caches it."""

from __future__ import annotations

import datetime as dt
import enum
import json
from dataclasses import dataclass, replace

from engine.ins.matricule import Matricule
from engine.ins.oids import InsOid
from engine.ins.result import Ins, ReturnedTraits


class SearchStatus(enum.Enum):
    """What the search established; only FOUND carries an INS."""

    FOUND = "found"
    NOT_FOUND = "not_found"
    SEVERAL = "several"
    INVALID_TRAITS = "invalid_traits"
    INVALID_ANSWER = "invalid_answer"  # INSi answered 00 with data that fails validation
    UNAVAILABLE = "unavailable"
    CONFIGURATION_ERROR = "configuration_error"

    @property
    def cacheable(self) -> bool:
        """Answers of the service are cached; failures and local refusals are not."""
        return self in (SearchStatus.FOUND, SearchStatus.NOT_FOUND, SearchStatus.SEVERAL)


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    """Result of `InsiService.search`; `detail` is short and safe to log (codes only)."""

    status: SearchStatus
    ins: Ins | None = None
    returned_traits: ReturnedTraits | None = None
    history: tuple[Ins, ...] = ()
    calls: int = 0
    called_at: dt.datetime | None = None
    simulated: bool = False
    detail: str = ""

    def to_payload(self) -> bytes:
        """Serialise for the result cache (JSON; the store may hold patient data)."""
        traits = self.returned_traits
        return json.dumps(
            {
                "v": 1,
                "status": self.status.value,
                "ins": _ins_to_json(self.ins),
                "history": [_ins_to_json(ins) for ins in self.history],
                "traits": None
                if traits is None
                else [
                    traits.birth_name,
                    list(traits.first_names),
                    traits.sex,
                    traits.birth_date,
                    traits.birth_place,
                ],
                "called_at": self.called_at.isoformat() if self.called_at else None,
                "simulated": self.simulated,
                "detail": self.detail,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_payload(cls, payload: bytes) -> SearchOutcome:
        """Read a cached outcome; `calls` is 0 because the cache answered."""
        data = json.loads(payload)
        traits = data["traits"]
        return cls(
            status=SearchStatus(data["status"]),
            ins=None if data["ins"] is None else _ins_from_json(data["ins"]),
            history=tuple(_ins_from_json(item) for item in data["history"]),
            returned_traits=None
            if traits is None
            else ReturnedTraits(traits[0], tuple(traits[1]), traits[2], traits[3], traits[4]),
            calls=0,
            called_at=dt.datetime.fromisoformat(data["called_at"]) if data["called_at"] else None,
            simulated=data["simulated"],
            detail=data["detail"],
        )

    def shared(self) -> SearchOutcome:
        """The same outcome for a caller who made no call itself (cache hit, single-flight)."""
        return replace(self, calls=0)

    def same_answer(self, other: SearchOutcome) -> bool:
        """The same answer from INSi, whatever each caller paid in calls for it."""
        return (
            self.status is other.status
            and self.ins == other.ins
            and self.returned_traits == other.returned_traits
            and self.history == other.history
            and self.called_at == other.called_at
            and self.simulated is other.simulated
            and self.detail == other.detail
        )

    def age_s(self, now: float) -> float | None:
        """Seconds since INSi gave this answer (epoch `now`), or None when unknown."""
        return None if self.called_at is None else now - self.called_at.timestamp()


def _ins_to_json(ins: Ins | None) -> list[str | None] | None:
    if ins is None:
        return None
    return [str(ins.matricule), ins.oid.value, ins.valid_from, ins.valid_to]


def _ins_from_json(item: list[str | None]) -> Ins:
    matricule, oid, valid_from, valid_to = item
    assert matricule is not None and oid is not None
    return Ins(Matricule.parse(matricule), InsOid(oid), valid_from, valid_to)
