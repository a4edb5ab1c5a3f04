"""SOAP faults of INSi and what each means for the engine: retry, or call an operator."""

from __future__ import annotations

from dataclasses import dataclass

from engine.ins.errors import (
    InsiConfigurationError,
    InsiError,
    InsiResponseError,
    InsiTechnicalError,
)


@dataclass(frozen=True, slots=True)
class SoapFault:
    """A SOAP 1.2 fault as INSi writes it: `Code/Subcode/Value` and `Detail/siram:Erreur`."""

    code: str
    """`Sender` (the request is refused) or `Receiver` (the service failed)."""
    subcode: str | None
    error_code: str | None
    """`code` attribute of `siram:Erreur`; the free text is never kept (it may echo data)."""

    @property
    def summary(self) -> str:
        """Short text safe to log: the codes only, never the service's free text."""
        return "/".join(part for part in (self.subcode, self.error_code) if part) or self.code


# Known faults: (subcode, Erreur code) → error class. A None subcode matches any subcode.
FaultKey = tuple[str | None, str | None]
CONFIGURATION_FAULTS: dict[FaultKey, str] = {
    ("siram_100", "desir_550"): "unknown software authorisation number (IDAM)",
    ("siram_100", None): "request refused (missing or invalid header)",
    (None, "desir_560"): "client certificate CN not allowed (INSI-AUTO/INSI-MANU)",
}
RETRYABLE_FAULTS: dict[FaultKey, str] = {
    ("siram_40", "desir_1020"): "called service temporarily unavailable",
    ("siram_40", "insi_102"): "traits-search service temporarily inaccessible",
    ("siram_40", None): "service temporarily unavailable",
}


def fault_error(fault: SoapFault) -> InsiError:
    """The typed error for a fault (unknown `Receiver` faults are retryable, `Sender` ones not)."""
    subcode = (fault.subcode or "").lower() or None
    error_code = (fault.error_code or "").lower() or None
    for table, kind in (
        (CONFIGURATION_FAULTS, InsiConfigurationError),
        (RETRYABLE_FAULTS, InsiTechnicalError),
    ):
        keys: tuple[tuple[str | None, str | None], ...] = (
            (subcode, error_code),
            (subcode, None),
            (None, error_code),
        )
        for key in keys:
            if key in table:
                return kind(f"INSi fault {fault.summary}: {table[key]}", code=fault.summary)
    if fault.code.lower().endswith("receiver"):
        return InsiTechnicalError(f"INSi fault {fault.summary}: service failure", fault.summary)
    return InsiResponseError(f"INSi fault {fault.summary}: request refused", fault.summary)
