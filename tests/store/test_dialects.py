"""Every statement a rule names has a text in each dialect: a backend cannot lack one."""

from __future__ import annotations

from engine.store import pg_sql, sqlite_sql


def test_both_dialects_write_the_same_statements() -> None:
    assert sorted(sqlite_sql.STATEMENTS) == sorted(pg_sql.STATEMENTS)
