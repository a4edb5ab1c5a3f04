"""The service recipes as far as this machine can check them: the systemd unit passes
`systemd-analyze verify`, the Dockerfile passes hadolint (no Docker daemon runs here, so the
image is not built), and the container's configuration is valid."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config.settings import load_config
from tests.support.engine_process import REPOSITORY

UNIT = REPOSITORY / "deploy" / "ins-engine.service"
DOCKERFILE = REPOSITORY / "Dockerfile"
INSTALLED_PATH = "/opt/ins-engine/bin/ins-engine"


def unit_settings() -> dict[str, str]:
    settings = {}
    for line in UNIT.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            settings[key.strip()] = value.strip()
    return settings


def test_unit_waits_for_the_engine_and_watches_it() -> None:
    settings = unit_settings()
    assert settings["Type"] == "notify"
    assert settings["NotifyAccess"] == "main"
    assert settings["WatchdogSec"] == "30"
    assert settings["User"] != "root"
    assert settings["ExecStart"].startswith(f"{INSTALLED_PATH} run --config ")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists that ExecStart exists: point it at this checkout's command, nothing else
    # changes.
    command = Path(sys.executable).parent / "ins-engine"
    unit = tmp_path / "ins-engine.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_PATH, str(command)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_verify_only_warns_about_a_broken_unit(tmp_path: Path) -> None:
    """Why the check above reads stderr: a bad value exits 0 with a warning."""
    unit = tmp_path / "broken.service"
    unit.write_text("[Service]\nType=notify\nExecStart=/bin/true\nWatchdogSec=thirty\n")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "Failed to parse sec value" in result.stderr


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout) == (0, "")


def test_image_runs_unprivileged_with_var_as_a_volume() -> None:
    text = DOCKERFILE.read_text()
    (user,) = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert user.split(":")[0] not in ("0", "root")
    assert 'VOLUME ["/srv/ins-engine/var"]' in text
    config = load_config(REPOSITORY / "deploy" / "container.toml")
    assert config.engine.store.startswith("sqlite:////srv/ins-engine/var/")
    assert config.http is not None and config.http.users == "/srv/ins-engine/var/users.toml"
    assert "COPY deploy/container.toml /srv/ins-engine/routes/engine.toml" in text
