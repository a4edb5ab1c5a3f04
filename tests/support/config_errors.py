"""The configuration error a file gives, for tests of what `check` says."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config.settings import load_config
from engine.errors import ConfigError


def config_error(path: Path) -> ConfigError:
    """The ConfigError loading `path` raises (the test fails if it loads)."""
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value
