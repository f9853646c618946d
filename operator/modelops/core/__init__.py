"""Pure decisions: spec, status, observations and ``now`` in; actions and the new status out."""

from .readings import Reading, ReadingKind

__all__ = ["Reading", "ReadingKind"]
