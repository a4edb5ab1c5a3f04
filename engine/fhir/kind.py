"""The `fhir` destination kind, declared in the `ins_engine.destinations` entry point group."""

from __future__ import annotations

import os
from collections.abc import Iterator

from engine.config.settings import DestinationSettings, RouteSettings
from engine.delivery.destination import Sender
from engine.delivery.kind import DestinationKind, DryRun
from engine.fhir.diff import differences
from engine.fhir.settings import FhirSettings
from engine.hl7.patterns import Patterns


def _build(route: RouteSettings, destination: DestinationSettings) -> Sender:
    from engine.fhir.sender import FhirSender  # httpx and the mapping, for FHIR lanes only

    return FhirSender(route, destination)


def _preview(route: RouteSettings, destination: DestinationSettings) -> DryRun:
    from engine.fhir.preview import FhirDryRun  # the mapping, for FHIR previews only

    return FhirDryRun(route, destination)


def _target(settings: FhirSettings) -> str:
    return settings.base_url


def _preflight(settings: FhirSettings) -> Iterator[tuple[str, str]]:
    oauth = settings.oauth
    if oauth is not None and not os.environ.get(oauth.client_secret_env):
        yield (
            "oauth.client_secret_env",
            f"set the client secret in the environment variable {oauth.client_secret_env}",
        )


def _warnings(destination: DestinationSettings) -> Iterator[tuple[str, str]]:
    """A destination that takes events the feed does nothing for (they would count as
    delivered without a write), or that leaves out events its fhir table sends."""
    settings: FhirSettings = destination.kind_tables["fhir"]
    accept = Patterns(destination.accept)
    fed = [event for events in settings.event_lists() for event in events]
    idle = [f"A{number:02d}" for number in range(1, 63) if f"A{number:02d}" not in fed]
    if any(accept.matches(f"ADT^{event}") for event in idle) or accept.matches("ORU^R01"):
        wanted = ", ".join(f'"ADT^{event}"' for event in fed)
        yield (
            "accept",
            "takes events the FHIR feed does not send (counted delivered, ACK code none): "
            f"accept = [{wanted}] takes only the feed's",
        )
    left = [event for event in fed if not accept.matches(f"ADT^{event}")]
    if left:
        yield (
            "accept",
            f"leaves out {', '.join('ADT^' + event for event in left)}, which its fhir table "
            "sends: add them to accept, or remove them from the fhir table",
        )


FHIR = DestinationKind(
    name="fhir",
    settings=FhirSettings,
    build=_build,
    doc="a FHIR R4 server fed FR Core Patient resources (IHE ITI-104, keyed by PID-3 PI)",
    target=_target,
    uses_tls=True,
    preflight=_preflight,
    warnings=_warnings,
    preview=_preview,
    differences=differences,
)
