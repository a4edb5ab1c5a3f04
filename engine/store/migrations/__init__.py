"""Versioned schema migrations, one numbered list per backend.

A store records every migration applied to it (`schema_migrations`). A new, empty store is
created at the latest version when it is first opened. An existing store older than the
engine is refused, with the command that migrates it (`ins-engine store migrate`): a schema
change is a deliberate step, taken once, by a person, with the engines stopped, and never a
side effect of starting one engine among several. A store newer than the engine is refused
too: an older engine could not read what a newer one writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import StoreError

MIGRATE_HINT = "ins-engine store migrate --config FILE"


@dataclass(frozen=True, slots=True)
class Applied:
    """What `migrate` did: the version found (None: a new store) and the version now."""

    before: int | None
    after: int


class StoreVersionError(StoreError):
    """The store's schema is not the one this engine writes; says what to do."""

    def __init__(self, store: str, found: int, latest: int) -> None:
        self.store = store
        self.found = found
        self.latest = latest
        if found < latest:
            advice = f"run `{MIGRATE_HINT}` with the engines stopped, then start them again"
            what = "older than this engine"
        else:
            advice = "run an engine of the version that migrated it"
            what = "newer than this engine"
        super().__init__(
            f"the store {store} is at schema version {found}, {what} (version {latest}): {advice}"
        )


def check_version(store: str, found: int | None, latest: int) -> None:
    """Refuse a store whose schema is not `latest` (None, a new store, is created instead)."""
    if found is not None and found != latest:
        raise StoreVersionError(store, found, latest)
