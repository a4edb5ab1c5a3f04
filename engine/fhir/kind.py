"""The `fhir` destination kind, declared in the `ins_engine.destinations` entry point group."""

from __future__ import annotations

from engine.config.settings import DestinationSettings, RouteSettings
from engine.delivery.destination import Sender
from engine.delivery.kind import DestinationKind
from engine.fhir.settings import FhirSettings


def _build(route: RouteSettings, destination: DestinationSettings) -> Sender:
    from engine.fhir.sender import FhirSender  # httpx and the mapping, for FHIR lanes only

    return FhirSender(route, destination)


def _target(settings: FhirSettings) -> str:
    return settings.base_url


FHIR = DestinationKind(
    name="fhir",
    settings=FhirSettings,
    build=_build,
    doc="a FHIR R4 server fed FR Core Patient resources (IHE ITI-104, keyed by PID-3 PI)",
    target=_target,
    uses_tls=True,
)
