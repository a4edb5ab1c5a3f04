"""`make demo`: a walk-through of the engine on the sample corpus (not part of the engine)."""
