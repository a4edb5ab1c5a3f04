"""The INS enrichment step's own tables in the engine's store: identity outcomes and INSi results.

`identity_outcomes` keeps, per message, the record the vigilance report reads (local
identity, traits sent, INS returned: patient data), indexed on the patient it holds out of
enrichment, if any (`engine.enrich.holds`); `insi_cache` keeps INSi answers across
restarts; `identity_reviews` keeps which outcomes a person has handled. They are the
`ins_enrich` kind's store extension (`engine.store.extension`): the core store creates them,
writes an outcome row in the transaction that routes its message, and prunes expired
answers, without knowing what they hold. The first two have the names and columns earlier
versions created inside the core schema, so an existing store keeps its rows.

The statements exist for both backends, SQLite and PostgreSQL; on PostgreSQL every engine
sharing the store shares the INSi cache.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from engine.errors import StoreError
from engine.store.decision import Decision
from engine.store.extension import ExtensionSql
from engine.store.roles import ExtensionTables

KIND = "ins_enrich"
GUARD_KIND = "ins_guard"  # the outbound INS guard: its removals are identity outcomes too
GUARD_REMOVED = "removed"  # the guard's decision when it took an INS out


@dataclass(frozen=True)
class _Queries:
    """One dialect's statements outside routing: the cache, the report, the work list."""

    load: str  # (key, now) → payload
    save: str  # (key, payload, expires_at)
    records: str  # (after, since, outcomes JSON or None, limit) → report rows
    work_list: str  # (wanted JSON, handled or None, before or None, limit) → rows with reviews
    mark: str  # (at, user, comment, message_id): one identity handled
    held: str  # (hold key) → a row while an outcome holding that patient is not handled
    holds: str | None = None  # () → every patient held; where one engine writes (SQLite)


# What `ins-engine store copy` carries over, key first.
_COPIED = (
    ("identity_outcomes", ("message_id", "recorded_at", "record")),
    ("insi_cache", ("key", "payload", "expires_at")),
    ("identity_reviews", ("message_id", "at", "user", "comment")),
)
_SQLITE = ExtensionSql(
    schema="""
CREATE TABLE IF NOT EXISTS identity_outcomes (
    message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    recorded_at REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS insi_cache (
    key TEXT PRIMARY KEY,
    payload BLOB NOT NULL,
    expires_at REAL NOT NULL
);
-- The vigilance team's "handled" mark on an identity needing a person (engine.enrich.reviews).
CREATE TABLE IF NOT EXISTS identity_reviews (
    message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    at REAL NOT NULL,
    user TEXT NOT NULL,
    comment TEXT NOT NULL
);
-- Patients kept out of enrichment until their conflict is handled (engine.enrich.holds).
CREATE INDEX IF NOT EXISTS identity_outcomes_hold
    ON identity_outcomes (json_extract(record, '$.hold'))
    WHERE json_extract(record, '$.hold') IS NOT NULL;
""",
    record="""INSERT OR REPLACE INTO identity_outcomes (message_id, recorded_at, record)
              VALUES (?, ?, ?)""",
    prune="""DELETE FROM insi_cache WHERE key IN (
                 SELECT key FROM insi_cache WHERE expires_at < ? LIMIT ?)""",
    legacy_decisions=f"""
INSERT INTO step_decisions (message_id, recorded_at, destination, step, kind, outcome, detail)
SELECT message_id, recorded_at, '', '{KIND}', '{KIND}',
       coalesce(json_extract(record, '$.outcome'), ''),
       coalesce(json_extract(record, '$.detail'), '')
FROM identity_outcomes ORDER BY message_id""",  # noqa: S608 - a constant
    copied=_COPIED,
)
_POSTGRESQL = ExtensionSql(
    schema="""
CREATE TABLE IF NOT EXISTS identity_outcomes (
    message_id bigint PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    recorded_at double precision NOT NULL,
    record text NOT NULL
);
CREATE TABLE IF NOT EXISTS insi_cache (
    key text PRIMARY KEY,
    payload bytea NOT NULL,
    expires_at double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS identity_reviews (
    message_id bigint PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    at double precision NOT NULL,
    "user" text NOT NULL,
    comment text NOT NULL
);
CREATE INDEX IF NOT EXISTS identity_outcomes_hold
    ON identity_outcomes (((record::jsonb) ->> 'hold'))
    WHERE ((record::jsonb) ->> 'hold') IS NOT NULL;
""",
    record="""INSERT INTO identity_outcomes (message_id, recorded_at, record)
              VALUES (%s, %s, %s)
              ON CONFLICT (message_id) DO UPDATE
              SET recorded_at = excluded.recorded_at, record = excluded.record""",
    prune="""DELETE FROM insi_cache WHERE key IN (
                 SELECT key FROM insi_cache WHERE expires_at < %s LIMIT %s)""",
    copied=_COPIED,
)
_QUERIES = {
    "sqlite": _Queries(
        load="SELECT payload FROM insi_cache WHERE key = ? AND expires_at > ?",
        save="INSERT OR REPLACE INTO insi_cache (key, payload, expires_at) VALUES (?, ?, ?)",
        records="""SELECT i.message_id, m.received_at, m.route, m.control_id, m.message_type,
                       i.record
                   FROM identity_outcomes i JOIN messages m ON m.id = i.message_id
                   WHERE i.message_id > :after AND m.received_at >= :since
                     AND (:wanted IS NULL OR json_extract(i.record, '$.outcome')
                          IN (SELECT value FROM json_each(:wanted)))
                   ORDER BY i.message_id LIMIT :limit""",
        work_list="""SELECT i.message_id, m.received_at, m.route, m.control_id, m.message_type,
                         i.record, r.at, r.user, r.comment
                     FROM identity_outcomes i JOIN messages m ON m.id = i.message_id
                     LEFT JOIN identity_reviews r ON r.message_id = i.message_id
                     WHERE json_extract(i.record, '$.outcome')
                           IN (SELECT value FROM json_each(:wanted))
                       AND (:handled IS NULL OR (r.message_id IS NOT NULL) = :handled)
                       AND (:before IS NULL OR i.message_id < :before)
                     ORDER BY i.message_id DESC LIMIT :limit""",
        mark="""INSERT INTO identity_reviews (message_id, at, user, comment)
                SELECT message_id, ?, ?, ? FROM identity_outcomes WHERE message_id = ?
                ON CONFLICT (message_id) DO UPDATE SET at = excluded.at,
                    user = excluded.user, comment = excluded.comment""",
        held="""SELECT 1 FROM identity_outcomes i
                WHERE json_extract(i.record, '$.hold') = ?
                  AND NOT EXISTS (SELECT 1 FROM identity_reviews r
                                  WHERE r.message_id = i.message_id)
                LIMIT 1""",
        holds="""SELECT DISTINCT json_extract(i.record, '$.hold') FROM identity_outcomes i
                 WHERE json_extract(i.record, '$.hold') IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM identity_reviews r
                                   WHERE r.message_id = i.message_id)""",
    ),
    "postgresql": _Queries(
        load="SELECT payload FROM insi_cache WHERE key = %s AND expires_at > %s",
        save="""INSERT INTO insi_cache (key, payload, expires_at) VALUES (%s, %s, %s)
                ON CONFLICT (key) DO UPDATE
                SET payload = excluded.payload, expires_at = excluded.expires_at""",
        records="""SELECT i.message_id, m.received_at, m.route, m.control_id, m.message_type,
                       i.record
                   FROM identity_outcomes i JOIN messages m ON m.id = i.message_id
                   WHERE i.message_id > %(after)s AND m.received_at >= %(since)s
                     AND (%(wanted)s::text IS NULL OR (i.record::jsonb ->> 'outcome')
                          IN (SELECT jsonb_array_elements_text(%(wanted)s::jsonb)))
                   ORDER BY i.message_id LIMIT %(limit)s""",
        work_list="""SELECT i.message_id, m.received_at, m.route, m.control_id, m.message_type,
                         i.record, r.at, r."user", r.comment
                     FROM identity_outcomes i JOIN messages m ON m.id = i.message_id
                     LEFT JOIN identity_reviews r ON r.message_id = i.message_id
                     WHERE (i.record::jsonb ->> 'outcome')
                           IN (SELECT jsonb_array_elements_text(%(wanted)s::jsonb))
                       AND (%(handled)s::boolean IS NULL
                            OR (r.message_id IS NOT NULL) = %(handled)s::boolean)
                       AND (%(before)s::bigint IS NULL OR i.message_id < %(before)s::bigint)
                     ORDER BY i.message_id DESC LIMIT %(limit)s""",
        mark="""INSERT INTO identity_reviews (message_id, at, "user", comment)
                SELECT message_id, %s, %s, %s FROM identity_outcomes WHERE message_id = %s
                ON CONFLICT (message_id) DO UPDATE SET at = excluded.at,
                    "user" = excluded."user", comment = excluded.comment""",
        held="""SELECT 1 FROM identity_outcomes i
                WHERE ((i.record::jsonb) ->> 'hold') = %s
                  AND NOT EXISTS (SELECT 1 FROM identity_reviews r
                                  WHERE r.message_id = i.message_id)
                LIMIT 1""",
    ),
}


class IdentityTables:
    """The `StoreExtension` of the ins_enrich kind, and of the INS guard, whose record of a
    message (written after the enrichment's, in the same transaction) takes its place."""

    def __init__(self, kind: str = KIND) -> None:
        self.kind = kind

    def sql(self, dialect: str) -> ExtensionSql | None:
        sql = {"sqlite": _SQLITE, "postgresql": _POSTGRESQL}.get(dialect)
        if sql is None or self.kind == KIND:
            return sql
        # The tables are the enrichment's: created, pruned and copied once, by it.
        return replace(sql, prune=None, legacy_decisions=None, copied=())

    def row(self, message_id: int, recorded_at: float, decision: Decision) -> Sequence[Any] | None:
        """The step's record, or, when the step failed, its outcome and detail alone (the
        report lists failed enrichments too); a guard decision without a record (it only
        tidied the PID) keeps nothing."""
        record = decision.payload
        if record is None and self.kind != KIND:
            return None
        if record is None:
            record = {"outcome": decision.outcome, "detail": decision.detail}
        return (message_id, recorded_at, orjson.dumps(record).decode())


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    """A message's enrichment outcome as stored; `record` holds patient identity (no repr)."""

    message_id: int
    received_at: float
    route: str
    control_id: str
    message_type: str
    record: dict[str, Any] = field(repr=False)


async def identity_records(
    store: ExtensionTables,
    since: float,
    outcomes: frozenset[str] | None,
    after_id: int = 0,
    limit: int = 500,
) -> list[IdentityRecord]:
    """Outcomes of messages received at or after `since` (epoch), in arrival order, after
    message `after_id`; only `outcomes` unless None. Page with `after_id`."""
    wanted = None if outcomes is None else json.dumps(sorted(outcomes))
    rows = await store.fetch(
        queries_for(store).records,
        {"after": after_id, "since": since, "wanted": wanted, "limit": limit},
    )
    return [
        IdentityRecord(message_id, received_at, route, control_id, message_type, json.loads(text))
        for message_id, received_at, route, control_id, message_type, text in rows
    ]


class StoredResultCache:
    """`engine.ins.cache.ResultCache` in the store: INSi answers kept across restarts."""

    def __init__(self, store: ExtensionTables, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._queries = queries_for(store)
        self._clock = clock

    async def load(self, key: str) -> bytes | None:
        """A cached INSi outcome, or None when absent or expired."""
        rows = await self._store.fetch(self._queries.load, (key, self._clock()))
        return bytes(rows[0][0]) if rows else None

    async def save(self, key: str, payload: bytes, expires_at: float) -> None:
        """Keep an INSi outcome; expired rows go with retention pruning. Not synced on its
        own: a power loss costs at most a new lookup."""
        await self._store.execute(self._queries.save, (key, payload, expires_at), durable=False)


def queries_for(store: ExtensionTables) -> _Queries:
    queries = _QUERIES.get(store.dialect)
    if queries is None:
        raise StoreError(f"the INS tables have no {store.dialect} statements")
    return queries
