"""Enrichment of ADT messages with the INS: read the local identity, decide, search, write.

`engine.enrich.step.EnrichStep` is the route step; the other modules are its pure parts.
"""
