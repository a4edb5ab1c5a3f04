"""The FHIR destination's pure parts: an ADT message as an FR Core Patient, and its checks."""
