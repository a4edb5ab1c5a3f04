"""Enrichment of ADT messages with the INS: read the local identity, decide, search, write.

`engine.enrich.kind` registers it as the `ins_enrich` step kind; `engine.enrich.step.EnrichStep`
is the step, `engine.enrich.store` its tables in the engine's store; the other modules are
its pure parts.
"""
