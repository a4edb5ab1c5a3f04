"""Whether the files and folders a configuration names are usable by this user.

The loader checks what a file says; these say what the machine says of the paths in it, for
the checks before start (`engine.app.preflight` and the step kinds' own `preflight`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def unreadable(key: str, path: str | None) -> Iterator[tuple[str, str]]:
    """(key, why) when the file `path` (the value of `key`, if set) cannot be read."""
    if path is None:
        return
    if not Path(path).is_file():
        yield key, f"{path}: no such file"
    elif not os.access(path, os.R_OK):
        yield key, f"{path}: not readable by this user"


def folder_problem(folder: Path) -> str | None:
    """Why the engine could not create files in `folder` (making it first if needed)."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder: cannot create {folder}"
    if not os.access(existing, os.W_OK | os.X_OK):
        made = "" if existing == folder else f" (to create {folder})"
        return f"{existing} is not writable by this user{made}"
    return None
