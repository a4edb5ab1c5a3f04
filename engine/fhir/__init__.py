"""The FHIR destination: ADT messages fed to a FHIR server as FR Core Patient (IHE ITI-104)."""
