"""Files that hold patient data outside the store: readable by their owner only.

A report or an enriched message file is created with mode 0600 from the first byte (not
chmod-ed after writing), never follows a symbolic link, and never replaces an existing file
unless the caller was asked to (`force`), so a report cannot silently overwrite another.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from engine.errors import CliError

PRIVATE_MODE = 0o600


def open_private(path: Path, force: bool) -> BinaryIO:
    """A new file at `path`, mode 0600, open for writing bytes."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if force else os.O_EXCL)
    try:
        descriptor = os.open(path, flags, PRIVATE_MODE)
    except FileExistsError:
        raise CliError(f"{path} already exists: choose another name or add --force") from None
    except OSError as error:
        raise CliError(f"cannot create {path}: {error.strerror or type(error).__name__}") from None
    os.fchmod(descriptor, PRIVATE_MODE)  # an existing file replaced with --force, or a umask
    return os.fdopen(descriptor, "wb")
