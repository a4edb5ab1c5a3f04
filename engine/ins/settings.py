"""The `[insi]` table of the configuration: which INSi to call and how.

Field names are the TOML keys. The loader (`engine.config.settings`) builds this dataclass, rejects
unknown keys and reports `problems()` with the file name. Secrets never live here: the
PKCS#12 password is read from the environment variable that `pkcs12_password_env` names.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import engine
from engine.base.hosts import is_loopback_host


def _doc(text: str, path: bool = False) -> dict[str, object]:
    """Field metadata read by the config loader: the reference line, and whether it is a file path
    (resolved against the config file's folder)."""
    return {"doc": text, "path": True} if path else {"doc": text}


@dataclass(frozen=True)
class InsiSettings:
    """How the engine reaches INSi (or its simulator); see `problems()` for the rules."""

    url: str | None = field(
        default=None,
        metadata=_doc(
            "INSi endpoint (https, mutual TLS); absent: in-process simulator, logged SIMULATED"
        ),
    )
    simulator: bool = field(
        default=True,
        metadata=_doc("results are simulated; set false to call the real INSi at `url`"),
    )
    cert: str | None = field(
        default=None,
        metadata=_doc("client certificate (PEM) of the organisation, CN INSI-AUTO", path=True),
    )
    key: str | None = field(
        default=None, metadata=_doc("private key (PEM, unencrypted) of `cert`", path=True)
    )
    pkcs12: str | None = field(
        default=None,
        metadata=_doc(
            "client certificate and key as a PKCS#12 bundle (.p12), instead of cert/key", path=True
        ),
    )
    pkcs12_password_env: str = field(
        default="INS_ENGINE_PKCS12_PASSWORD",
        metadata=_doc("environment variable holding the PKCS#12 password (never in the file)"),
    )
    ca: str | None = field(
        default=None,
        metadata=_doc("CA bundle (PEM) that signs the INSi server chain (IGC-Santé)", path=True),
    )
    idam: str = field(
        default="",
        metadata=_doc("software authorisation number (IDAM) from the CNDA, sent in ContexteLPS"),
    )
    software_name: str = field(
        default=engine.SOFTWARE_NAME,
        metadata=_doc("software name sent in ContexteLPS (urn:lps:NAME:VERSION)"),
    )
    software_version: str = field(
        default=engine.__version__, metadata=_doc("software version sent in ContexteLPS")
    )
    instance_id: str | None = field(
        default=None,
        metadata=_doc(
            "UUID of this installation (ContexteLPS Instance); default derived from host"
        ),
    )
    emitter: str | None = field(
        default=None,
        metadata=_doc("Emetteur of the contexts; default the OU of the client certificate subject"),
    )
    timeout_s: float = field(default=10.0, metadata=_doc("timeout of one INSi call, seconds"))
    max_concurrency: int = field(default=8, metadata=_doc("INSi calls in flight at once"))
    cache_ttl_s: float = field(
        default=86400.0,
        metadata=_doc(
            "how long a found/not found/several answer is reused, seconds (0 = no cache)"
        ),
    )
    verify_max_age_s: float = field(
        default=3600.0,
        metadata=_doc(
            "a cached answer older than this cannot verify an INS a message carries: INSi is "
            "called again, seconds (searches without INS use cache_ttl_s)"
        ),
    )
    max_calls_per_identity: int = field(
        default=5,
        metadata=_doc("cap on INSi calls for one identity (one per first name, then all together)"),
    )
    retries: int = field(
        default=2,
        metadata=_doc(
            "retries of a call after a technical error (timeout, siram_40), with back-off"
        ),
    )
    retry_backoff_s: float = field(
        default=0.5,
        metadata=_doc("first back-off delay, seconds; doubles at each retry, with jitter"),
    )
    breaker_threshold: int = field(
        default=5, metadata=_doc("consecutive technical failures that open the circuit breaker")
    )
    breaker_reset_s: float = field(
        default=30.0,
        metadata=_doc(
            "seconds the breaker stays open before a trial call; calls are also held this"
            " long after a configuration refusal"
        ),
    )
    simulator_persons: str | None = field(
        default=None,
        metadata=_doc(
            "simulator: JSON file of persons (default: the public test persons)", path=True
        ),
    )
    simulator_synthetic: int = field(
        default=0, metadata=_doc("simulator: add this many synthetic persons (deterministic)")
    )
    simulator_seed: int = field(
        default=0,
        metadata=_doc("simulator: seed of the synthetic persons and of fault injection"),
    )
    simulator_latency_ms: float = field(
        default=0.0, metadata=_doc("simulator: latency added to each answer, milliseconds")
    )
    simulator_fault_rate: float = field(
        default=0.0,
        metadata=_doc("simulator: share of calls answered with a siram_40 fault (0 to 1)"),
    )

    @property
    def in_process(self) -> bool:
        """No URL: the engine talks to its own simulator in memory."""
        return self.url is None

    def problems(self) -> list[tuple[str, str]]:
        """Cross-field checks: (key, what is expected) for each inconsistency."""
        found: list[tuple[str, str]] = []
        if self.url is None:
            if not self.simulator:
                found.append(("url", "the INSi endpoint URL (required when simulator = false)"))
        else:
            found.extend(self._url_problems(self.url))
        if bool(self.cert) != bool(self.key):
            found.append(("key" if self.cert else "cert", "cert and key go together (PEM files)"))
        if self.pkcs12 and self.cert:
            found.append(("pkcs12", "either cert/key or pkcs12, not both"))
        if not self.pkcs12_password_env:
            found.append(("pkcs12_password_env", "name of an environment variable"))
        if self.instance_id is not None and not _is_uuid(self.instance_id):
            found.append(("instance_id", "a UUID"))
        for key, ok, expected in (
            ("timeout_s", self.timeout_s > 0, "a number of seconds > 0"),
            ("max_concurrency", self.max_concurrency >= 1, "an integer >= 1"),
            ("cache_ttl_s", self.cache_ttl_s >= 0, "a number of seconds >= 0"),
            ("verify_max_age_s", self.verify_max_age_s >= 0, "a number of seconds >= 0"),
            ("max_calls_per_identity", self.max_calls_per_identity >= 1, "an integer >= 1"),
            ("retries", self.retries >= 0, "an integer >= 0"),
            ("retry_backoff_s", self.retry_backoff_s >= 0, "a number of seconds >= 0"),
            ("breaker_threshold", self.breaker_threshold >= 1, "an integer >= 1"),
            ("breaker_reset_s", self.breaker_reset_s > 0, "a number of seconds > 0"),
            ("simulator_synthetic", self.simulator_synthetic >= 0, "an integer >= 0"),
            ("simulator_latency_ms", self.simulator_latency_ms >= 0, "milliseconds >= 0"),
            ("simulator_fault_rate", 0 <= self.simulator_fault_rate <= 1, "a share from 0 to 1"),
        ):
            if not ok:
                found.append((key, expected))
        return found

    def _url_problems(self, url: str) -> list[tuple[str, str]]:
        parts = urlsplit(url)
        loopback = is_loopback_host(parts.hostname)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return [("url", "an https:// URL")]
        if parts.scheme == "http" and not loopback:
            return [("url", "https:// URL (plain http only for a loopback address)")]
        if parts.username or parts.password:
            return [("url", "a URL without credentials")]
        found: list[tuple[str, str]] = []
        if not loopback:
            if self.simulator:
                found.append(("simulator", "false when url names a remote INSi service"))
            if not (self.cert or self.pkcs12):
                found.append(
                    (
                        "cert",
                        "a client certificate (cert + key, or pkcs12): INSi requires mutual TLS",
                    )
                )
        if not self.simulator and not self.idam.strip():
            found.append(("idam", "the software's CNDA authorisation number (IDAM)"))
        return found


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
