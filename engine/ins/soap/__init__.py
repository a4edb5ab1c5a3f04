"""The INSi SOAP 1.2 contract: names, headers, faults and response parsing (no I/O)."""
