"""The largest size a file reaches while a block runs: the WAL test and its benchmark."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path


class PeakSize:
    """Samples the file's size from a thread every `every_s` while the block runs."""

    def __init__(self, path: Path, every_s: float = 0.002) -> None:
        self.path = path
        self.peak = 0
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakSize:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self._every_s):
            with contextlib.suppress(FileNotFoundError):
                self.peak = max(self.peak, self.path.stat().st_size)
