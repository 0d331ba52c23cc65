"""What a worker has done since it started, as its heartbeats and its last log line report."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from typing import ClassVar

from pulsarjobs.settings import Settings
from pulsarjobs.wire.verdicts import Outcome
from pulsarjobs.worker.type_metrics import TypeCounts


@dataclass
class WorkerStats:
    """A step of the pipeline (steps.py) as well: it counts every verdict it is told."""

    name: ClassVar[str] = "counters"
    done: int = 0  # ran and succeeded
    retried: int = 0  # failed, published again to run later
    dead: int = 0  # failed for the last time, could not run at all, or no job (undecodable)
    expired: int = 0  # not run: past their expires_at
    early: int = 0  # delivered before their run_at, put back
    duplicates: int = 0  # delivered again after they were settled, acknowledged unrun
    cancelled: int = 0  # cancelled by a user: acknowledged unrun, or their run's result discarded
    deferred: int = 0  # were running when their process died: put back to run a little later
    snoozed: int = 0  # put themselves off (Snooze): neither processed nor failed
    parked: int = 0  # parked until a time, an event or their child jobs (durable jobs)
    grouped: int = 0  # their work joined another stored job (debounce, aggregation)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # By job type and queue, reported each minute (type_metrics.py); None: not reported
    per_type: TypeCounts | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, settings: Settings) -> WorkerStats:
        """A worker's: by job type too, unless its reports are off (metrics_interval 0)."""
        stats = cls()
        if settings.metrics_interval:
            stats.per_type = TypeCounts(stats._lock)
        return stats

    def told(self, queue: str, outcome: Outcome) -> None:
        """One more run settled with this verdict, by its type too; runner threads count
        concurrently. (acquire and release: a `with` costs twice their instructions.)"""
        name, lock = outcome.kind.policy.counter, self._lock
        lock.acquire()
        try:
            setattr(self, name, getattr(self, name) + 1)
            if self.per_type is not None:
                self.per_type.count(queue, outcome, name)
        finally:
            lock.release()

    def count_duplicate(self) -> None:
        with self._lock:
            self.duplicates += 1

    @property
    def failed(self) -> int:
        """Runs that failed: retried or dead."""
        return self.retried + self.dead

    @property
    def processed(self) -> int:
        """Jobs settled: done, retried, dead, expired or cancelled."""
        return self.done + self.failed + self.expired + self.cancelled

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.type == "int"}
