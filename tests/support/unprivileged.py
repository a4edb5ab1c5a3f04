"""Run a command as an ordinary user would, to test what file modes refuse.

Tests may run as root, for whom every folder is writable. Dropping CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH from the child's capability bounding set (Linux `prctl`) makes the
kernel apply file modes to it as to any user, while it keeps its uid and can still read
the interpreter. For a non-root user there is nothing to drop.
"""

from __future__ import annotations

import ctypes
import os

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


def drop_root_file_override() -> None:
    """`preexec_fn` of `subprocess`: file permissions apply to the child, even as root."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")
