"""The INSi error tree: what went wrong, and whether trying again later can help.

Texts are safe to log: they name codes and causes, never a patient's traits or matricule.
"""

from __future__ import annotations

from engine.errors import EngineError


class InsiError(EngineError):
    """Base of every INSi failure.

    `code` is the short machine-readable cause (a SOAP fault code, `timeout`, …) that ends up
    in `SearchOutcome.detail` and in logs.
    """

    retryable = False

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code or type(self).__name__


class InvalidTraitsError(InsiError):
    """The traits fail the local checks: sending them would only earn a rejection."""


class MatriculeError(InsiError):
    """A matricule INS is malformed or its key does not match."""


class InsiConfigurationError(InsiError):
    """The service refuses who we are (IDAM, certificate) or TLS cannot be set up.

    Retrying cannot help until an operator fixes the configuration.
    """


class InsiTechnicalError(InsiError):
    """The service or the network failed for now (timeout, `siram_40`, HTTP 5xx)."""

    retryable = True


class InsiResponseError(InsiError):
    """The service answered something the engine cannot trust (malformed, incomplete)."""


class InvalidAnswerError(InsiResponseError):
    """A 00 answer that parses but fails validation (matricule key, missing trait, unknown
    OID): wrong for this one identity, so it is neither retried nor counted as an outage."""


class CircuitOpenError(InsiError):
    """Calls are suspended after repeated technical failures; the breaker will retry later."""
