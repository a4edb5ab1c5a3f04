"""Replay of message files over MLLP: read files (`reader`, `files`), send them (`sender`),
report what the receiver answered (`summary`). The command is `engine.commands.replay`."""
