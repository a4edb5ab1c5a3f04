"""Store rules written once, run by either backend: flows of named statements.

A rule (`engine.store.rules`) is a generator: it yields the statements it needs, each named
rather than written out, and receives each one's `Outcome` back; the Python around them (what
a duplicate means, when a lease is lost, which entry an operator may resend) stays in the
rule. A backend's driver runs the flow: it looks each name up in its dialect's table of
statements (`engine.store.sqlite_sql`, `engine.store.pg_sql`) and executes it on its own
connection, synchronously (SQLite, inside a group commit) or asynchronously (PostgreSQL), as
httpx's auth flows run on either client. Where each statement costs a round trip
(PostgreSQL), a group commit's flows run side by side, in rounds (`run_rounds`). A third
backend is a driver, its table of statements and its migrations.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from typing import Any, NamedTuple, TypeAlias, TypeVar

from engine.store.base import Parameters

T = TypeVar("T")
OWN = "own"  # the name of a statement whose text comes with it (a store extension's)


class Statement(NamedTuple):  # a tuple: built for every statement, it must cost little
    """One statement of a flow: its name in the dialect's table, its parameters (by name),
    and for a batch, the parameters of each run (which a dialect may send as one statement
    over arrays). `text` is a store extension's own statement (named `OWN`). `conditions`
    names the parts of a search's WHERE clause, keys of the dialect's table: those named
    `NAME:...` (NAME, the statement's) are joined with AND where its text says `{where}`,
    those of another group `G:...` where a condition's text says `{G}`."""

    name: str
    parameters: Parameters = ()
    batch: Sequence[Parameters] | None = None
    text: str | None = None
    conditions: tuple[str, ...] | None = None

    @classmethod
    def own(
        cls, text: str, parameters: Parameters = (), batch: Sequence[Parameters] | None = None
    ) -> Statement:
        return cls(OWN, parameters, batch, text)


class Outcome(NamedTuple):
    """What a statement gave back: its rows, and how many rows it changed."""

    rows: list[tuple[Any, ...]]
    rowcount: int

    @property
    def first(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None


NOTHING = Outcome([], 0)  # the outcome of an empty batch, which no driver runs

Flow: TypeAlias = Generator[Statement, Outcome, T]
MakeFlow: TypeAlias = Callable[[], Flow[T]]  # a write is run again alone if its group fails


def rows_of(statement: Statement) -> Flow[list[tuple[Any, ...]]]:
    """A flow of one statement: its rows."""
    return (yield statement).rows


def text_of(statements: Mapping[str, str], statement: Statement) -> str:
    """The text a statement runs, in a dialect's table of statements."""
    if statement.text is not None:
        return statement.text
    text = statements[statement.name]
    if statement.conditions is None:
        return text
    groups: dict[str, list[str]] = {}
    for key in statement.conditions:
        groups.setdefault(key.partition(":")[0], []).append(statements[key])
    text = text.replace("{where}", " AND ".join(groups.pop(statement.name, ["TRUE"])))
    for group, parts in groups.items():  # a condition's own `{group}`: its parts
        text = text.replace(f"{{{group}}}", " AND ".join(parts))
    return text


def run(flow: Flow[T], execute: Callable[[Statement], Outcome]) -> T:
    """Run a flow with a synchronous driver."""
    try:
        statement = next(flow)
        while True:
            statement = flow.send(execute(statement))
    except StopIteration as finished:
        return finished.value


async def run_async(flow: Flow[T], execute: Callable[[Statement], Awaitable[Outcome]]) -> T:
    """Run a flow with an asynchronous driver."""
    try:
        statement = next(flow)
        while True:
            statement = flow.send(await execute(statement))
    except StopIteration as finished:
        return finished.value


class StatementFailed(Exception):
    """A statement of a round failed (the rest of the round was not run): its position in
    the round, and its error."""

    def __init__(self, position: int, error: Exception) -> None:
        super().__init__(type(error).__name__)
        self.position = position
        self.error = error


class FlowFailed(Exception):
    """A flow raised, or one of its statements failed: the error."""

    def __init__(self, error: Exception) -> None:
        super().__init__(type(error).__name__)
        self.error = error


async def run_rounds(
    flows: Sequence[Flow[Any]],
    execute: Callable[[list[Statement]], Awaitable[Sequence[Outcome]]],
) -> list[Any]:
    """Run flows side by side, in rounds: each round, the next statement of every flow still
    running is executed together (`execute`: their outcomes in order, `StatementFailed` for
    one that failed), and each outcome sent back into its flow. A flow's next statement may
    depend on its last outcome (an id RETURNING gave), so a round holds one statement a
    flow: as many rounds as the longest flow has statements, not as all have together.
    Their results, in order; `FlowFailed` if one raised or one of its statements failed
    (other errors of `execute`, the connection's, are raised as they are)."""
    results: list[Any] = [None] * len(flows)
    running: Sequence[int] = range(len(flows))
    outcomes: Sequence[Outcome | None] = [None] * len(flows)
    while True:
        round_: list[tuple[int, Statement]] = []
        for index, outcome in zip(running, outcomes, strict=True):
            flow = flows[index]
            try:
                statement = next(flow) if outcome is None else flow.send(outcome)
            except StopIteration as finished:
                results[index] = finished.value
            except Exception as error:
                raise FlowFailed(error) from error
            else:
                round_.append((index, statement))
        if not round_:
            return results
        running = [index for index, _ in round_]
        try:
            outcomes = await execute([statement for _, statement in round_])
        except StatementFailed as failed:
            raise FlowFailed(failed.error) from failed.error


def outcome_of(statement: Statement) -> Flow[Outcome]:
    """A flow of one statement: its outcome."""
    return (yield statement)
