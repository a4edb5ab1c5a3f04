"""Which traits to send, in which order, and when to stop: the certified clients' strategy.

One call per birth first name in order, each with that name alone; stop at the first 00;
then one call with all the first names together. A 02 is never a success. Calls are capped
per identity. The birth place is sent whenever it is known.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from engine.ins.result import CodeCR, InsiResult
from engine.ins.traits import IdentityTraits, TraitsQuery


def plan_queries(traits: IdentityTraits, max_calls: int) -> list[TraitsQuery]:
    """The calls to make, at most `max_calls`; when capped, the all-names call is kept last."""

    def query(first_name: str) -> TraitsQuery:
        return TraitsQuery(
            traits.birth_name, first_name, traits.sex, traits.birth_date, traits.birth_place
        )

    singles = [query(name) for name in dict.fromkeys(traits.first_names)]
    if len(traits.first_names) == 1 or max_calls == 1:
        return singles[:max_calls]
    return [*singles[: max_calls - 1], query(" ".join(traits.first_names))]


async def run_strategy(
    queries: list[TraitsQuery], call: Callable[[TraitsQuery], Awaitable[InsiResult]]
) -> InsiResult:
    """The decisive result: the first 00, else the last 02 seen, else the last 01.

    Errors raised by `call` end the search (the caller maps them to an outcome).
    """
    decisive: InsiResult | None = None
    for query in queries:
        result = await call(query)
        if result.code is CodeCR.FOUND:
            return result
        if result.code is CodeCR.SEVERAL or decisive is None or decisive.code is not CodeCR.SEVERAL:
            decisive = result
    assert decisive is not None, "plan_queries always plans at least one call"
    return decisive
