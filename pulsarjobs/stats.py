"""What a worker has done since it started, as its heartbeats report it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Outcome kinds as counted by name, to the fields that count them.
_FIELD_OF_KIND = {
    "done": "done",
    "retry": "retried",
    "dead": "dead",
    "expired": "expired",
    "early": "early",
    "duplicate": "duplicates",
}


@dataclass(slots=True)
class WorkerStats:
    done: int = 0  # ran and succeeded
    retried: int = 0  # failed, published again to run later
    dead: int = 0  # failed for the last time, or could not run at all
    expired: int = 0  # not run: past their expires_at
    early: int = 0  # delivered before their run_at, put back
    duplicates: int = 0  # delivered again after they were settled, acknowledged unrun

    @property
    def processed(self) -> int:
        """Jobs settled: done, retried, dead or expired."""
        return self.done + self.failed + self.expired

    @property
    def failed(self) -> int:
        """Runs that failed: retried or dead."""
        return self.retried + self.dead

    @classmethod
    def of(cls, counts: WorkerStats | Mapping[str, int]) -> WorkerStats:
        """The stats themselves, or counts by outcome kind (as worker.py keeps them until it
        keeps a WorkerStats; then this goes)."""
        if isinstance(counts, WorkerStats):
            return counts
        return cls(**{field: counts.get(kind, 0) for kind, field in _FIELD_OF_KIND.items()})
