"""Folders the engine creates: 0750 whatever the umask, every level it creates.

They hold patient data (the store, message files, enriched files): readable by the engine's
account and its group (the collecting system's account), never by everyone. `mkdir(mode=)`
is filtered by the umask and `parents=True` gives the intermediate folders the umask's
default, so each folder made here is created, then given its mode explicitly. Folders that
already exist are left as they are: their mode is the administrator's choice.
"""

from __future__ import annotations

import os
from pathlib import Path

FOLDER_MODE = 0o750


def make_folders(path: Path) -> None:
    """Create `path` and its missing parents, each 0750; raises `OSError` (e.g. a parent
    that is a file, or a folder the engine may not write)."""
    missing: list[Path] = []
    current = path
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            if folder.is_dir():  # made meanwhile by another process: not ours to change
                continue
            raise
        os.chmod(folder, FOLDER_MODE)
