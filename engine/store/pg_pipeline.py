"""A round of statements on a PostgreSQL connection: one pipeline, written with its Sync in
one flush, then every statement's outcome read, in one round trip.

Why not psycopg's own pipeline: it writes each statement as soon as it is queued, and lets
other tasks run in between. The server arms `idle_in_transaction_session_timeout` only when
it is ready for a query again, that is after a Sync; while it waits for the rest of a
pipeline it waits without limit. A transaction holding the order lock must never wait so
on a frozen or cut-off engine (every other engine's commits would wait behind it). Here a
round is adapted first, then queued whole in libpq's buffer with its Sync, and only then
flushed: the server waits for the rest of the round only as it would for the rest of one
long statement, and between rounds it waits idle in transaction, the limit armed.
The adaptation is psycopg's own (`PostgresQuery`, its generators), not part of its public
API: pyproject.toml bounds psycopg to the versions the PostgreSQL tests ran on.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import abc, errors, pq
from psycopg._queries import PostgresQuery
from psycopg.adapt import Transformer
from psycopg.generators import fetch, send
from psycopg.pq.abc import PGresult

from engine.store.flows import Outcome, Statement, StatementFailed
from engine.store.pg_sql import queries

Connection = psycopg.AsyncConnection[Any]
_Key = tuple[bytes, tuple[int, ...]]  # a query's text and parameter types
MAX_PREPARED = 200  # texts prepared on one connection; more run unprepared
# The texts prepared on each connection, by name; names are never reused, so that a Parse
# the server skipped (a round aborted before it) leaves no doubt about what a name means.
_PREPARED: weakref.WeakKeyDictionary[Connection, dict[_Key, bytes]] = weakref.WeakKeyDictionary()
_NAMES = itertools.count()
_FATAL = pq.ExecStatus.FATAL_ERROR
_ROWS = pq.ExecStatus.TUPLES_OK


async def run_round(connection: Connection, statements: Sequence[Statement]) -> list[Outcome]:
    """Run `statements` in one round trip, in order; their outcomes. `StatementFailed` for
    the first that failed (the server skipped the rest of the round, and the transaction
    is aborted); a connection's error (`psycopg.OperationalError`) as it is."""
    transformer = Transformer(connection)
    adapted: list[list[PostgresQuery]] = []
    for position, statement in enumerate(statements):
        try:
            adapted.append([_adapt(transformer, *query) for query in queries(statement)])
        except Exception as error:  # a value psycopg cannot send: nothing sent yet
            raise StatementFailed(position, error) from error
    results = await _exchange(connection, [query for own in adapted for query in own])
    encoding = connection.info.encoding
    each = iter(results)
    outcomes = []
    for position, own in enumerate(adapted):
        rows: list[tuple[Any, ...]] = []
        changed = 0
        for result in itertools.islice(each, len(own)):
            if result.status == _FATAL:
                failure = errors.error_from_result(result, encoding)
                if isinstance(failure, psycopg.OperationalError):
                    raise failure  # a lock or the server: the group's, not the statement's
                raise StatementFailed(position, failure)
            if result.status == _ROWS:
                transformer.set_pgresult(result)
                rows += transformer.load_rows(0, result.ntuples, tuple)
            changed += result.command_tuples or 0
        outcomes.append(Outcome(rows, changed))
    return outcomes


def _adapt(transformer: abc.Transformer, sql: str, parameters: Any) -> PostgresQuery:
    query = PostgresQuery(transformer)
    query.convert(sql, parameters)
    return query


async def _exchange(connection: Connection, adapted: list[PostgresQuery]) -> list[PGresult]:
    """Queue every query and the Sync, flush them together, read a result a query. Each
    text is prepared on the connection the first time it runs (in the same round), as
    psycopg prepares a query it runs often: the server parses and plans it once."""
    pgconn = connection.pgconn
    prepared = _PREPARED.setdefault(connection, {})
    fresh: dict[_Key, bytes] = {}
    parsing: list[_Key | None] = []  # a result's: the text a Parse prepares, None a query's
    async with connection.lock:
        pgconn.enter_pipeline_mode()
        try:
            for query in adapted:
                key = (query.query, query.types)
                name = prepared.get(key) or fresh.get(key)
                if name is None and len(prepared) + len(fresh) < MAX_PREPARED:
                    name = fresh[key] = b"ins_%d" % next(_NAMES)
                    pgconn.send_prepare(name, query.query, param_types=query.types)
                    parsing.append(key)
                if name is None:
                    pgconn.send_query_params(
                        query.query,
                        query.params,
                        param_types=query.types,
                        param_formats=query.formats,
                    )
                else:
                    pgconn.send_query_prepared(name, query.params, param_formats=query.formats)
                parsing.append(None)
            pgconn.pipeline_sync()
            results = await connection.wait(_results(pgconn, len(parsing)))
            pgconn.exit_pipeline_mode()
        except BaseException:
            # Half a round sent or read (a cancellation, a lost connection): the
            # connection's state is unknown; closing it ends the transaction.
            pgconn.finish()
            raise
    answers: list[PGresult] = []
    failed: PGresult | None = None  # a Parse's failure: its query's answer
    for parsed, result in zip(parsing, results, strict=True):
        if parsed is None:
            answers.append(failed or result)
            failed = None
        elif result.status == pq.ExecStatus.COMMAND_OK:
            prepared[parsed] = fresh[parsed]
        else:
            failed = result
    return answers


def _results(pgconn: pq.abc.PGconn, count: int) -> abc.PQGen[list[PGresult]]:
    """Flush, then read `count` queries' results (each followed by its end), then the
    Sync's."""
    yield from send(pgconn)
    results = []
    for _ in range(count):
        result = yield from fetch(pgconn)
        if result is None or (yield from fetch(pgconn)) is not None:
            raise errors.OperationalError("unexpected results from the store")
        results.append(result)
    synced = yield from fetch(pgconn)
    if synced is None or synced.status != pq.ExecStatus.PIPELINE_SYNC:
        raise errors.OperationalError("unexpected results from the store")
    return results
