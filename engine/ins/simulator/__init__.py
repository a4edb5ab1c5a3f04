"""A local INSi simulator: same SOAP 1.2 contract, public test persons, injected faults.

Its answers are always marked simulated (logs, `X-INSi-Simulated` HTTP header) so that no one
mistakes it for the national service.
"""
