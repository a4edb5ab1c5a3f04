"""Configuration: the TOML files loaded into frozen dataclasses, with errors naming file and key,
and the TLS contexts built from them."""
