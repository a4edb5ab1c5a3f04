"""What calling INSi needs from this machine, checked before the engine starts.

The `ins_enrich` kind's `preflight` (`engine.app.preflight` runs it when a route enriches):
the certificate, key and CA files exist and load, the PKCS#12 password variable is set, the
simulator's persons file reads. Each problem names the `[insi]` key and the path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from engine.config.paths import unreadable
from engine.config.settings import Config
from engine.ins.errors import InsiConfigurationError
from engine.ins.settings import InsiSettings
from engine.ins.tls import build_tls

_INSI_KEY = re.compile(r"^\[insi\] (\w+): (.*)$", re.DOTALL)
Problem = tuple[str, str]  # (key, what is wrong and what to do)


def insi_problems(config: Config) -> Iterator[Problem]:
    """The problems of the configuration's `[insi]` section."""
    settings: InsiSettings = config.insi
    if settings.url is None:
        yield from unreadable("insi.simulator_persons", settings.simulator_persons)
        return
    if not settings.url.startswith("https://"):
        return
    problems = [
        problem
        for name in ("cert", "key", "pkcs12", "ca")
        for problem in unreadable(f"insi.{name}", getattr(settings, name))
    ]
    if settings.pkcs12 and settings.pkcs12_password_env not in os.environ:
        problems.append(
            (
                "insi.pkcs12_password_env",
                f"set the PKCS#12 password in the environment variable "
                f"{settings.pkcs12_password_env}",
            )
        )
    yield from problems
    if problems:
        return
    try:
        build_tls(settings)
    except InsiConfigurationError as error:
        named = _INSI_KEY.match(str(error))
        yield (f"insi.{named.group(1)}", named.group(2)) if named else ("insi", str(error))
