"""ins-engine: an HL7 v2 / MLLP integration engine that puts the INS into ADT messages."""

__version__ = "0.1.0"
SOFTWARE_NAME = "ins-engine"
