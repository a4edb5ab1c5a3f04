"""Sub-commands of the `ins-engine` CLI, one module each (see `engine.cli`)."""
