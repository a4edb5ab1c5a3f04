"""Route step kinds: the registry, the built-in generic kinds, and what a plugin needs.

A package adds a kind by declaring an entry point in the `ins_engine.steps` group whose
object is a `StepKind` named like the entry point; see `examples/` and the README.
"""
