"""Route step kinds: the registry, the built-in generic kinds, and what a plugin needs.

A package adds a kind by declaring an entry point in the `ins_engine.steps` group whose
object is a `StepKind` named like the entry point (see `examples/phone-format`). The names
below are the interface such a package uses; `engine.hl7.path.FieldPath` and
`engine.hl7.escape` address and write values.
"""

from engine.steps.kind import StepContext, StepKind, from_settings
from engine.steps.pipeline import RoutedMessage, Step, StepResult

__all__ = ["RoutedMessage", "Step", "StepContext", "StepKind", "StepResult", "from_settings"]
