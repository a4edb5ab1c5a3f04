"""Flows run side by side in rounds (a PostgreSQL group commit's): a statement of each flow
still running a round, each flow given its own outcomes, a failure told apart from the
connection's."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from engine.store.flows import (
    Flow,
    FlowFailed,
    Outcome,
    Statement,
    StatementFailed,
    run_rounds,
)


def counting(name: str, statements: int) -> Flow[list[int]]:
    """A flow of `statements` statements: the rowcounts it was given back."""
    given = []
    for _ in range(statements):
        given.append((yield Statement(name)).rowcount)
    return given


async def test_each_round_runs_the_next_statement_of_every_flow_still_running() -> None:
    rounds: list[list[str]] = []

    async def execute(statements: list[Statement]) -> Sequence[Outcome]:
        rounds.append([statement.name for statement in statements])
        return [Outcome([], 10 * len(rounds) + n) for n in range(len(statements))]

    flows = [counting("a", 1), counting("b", 3), counting("c", 0), counting("d", 2)]
    results = await run_rounds(flows, execute)
    assert rounds == [["a", "b", "d"], ["b", "d"], ["b"]]  # as many as the longest flow
    assert results == [[10], [11, 20, 30], [], [12, 21]]


async def test_a_failing_statement_or_flow_fails_the_rounds_with_its_own_error() -> None:
    async def second_fails(statements: list[Statement]) -> Sequence[Outcome]:
        raise StatementFailed(1, ZeroDivisionError())

    with pytest.raises(FlowFailed) as failed:
        await run_rounds([counting("a", 1), counting("b", 1)], second_fails)
    assert isinstance(failed.value.error, ZeroDivisionError)

    def raises() -> Flow[None]:
        yield Statement("a")
        raise ValueError("a bug")

    async def answers(statements: list[Statement]) -> Sequence[Outcome]:
        return [Outcome([], 0)] * len(statements)

    with pytest.raises(FlowFailed) as failed:
        await run_rounds([counting("b", 3), raises()], answers)
    assert isinstance(failed.value.error, ValueError)

    async def connection_lost(statements: list[Statement]) -> Sequence[Outcome]:
        raise ConnectionError  # not a flow's: raised as it is

    with pytest.raises(ConnectionError):
        await run_rounds([counting("a", 1)], connection_lost)
