"""The national health identity (INS) and the INSi teleservice that returns it.

`engine.ins.service.open_insi_service` is the entry point the enrichment step uses; the
rest of the package is the domain model, the SOAP client and a local INSi simulator.
"""
