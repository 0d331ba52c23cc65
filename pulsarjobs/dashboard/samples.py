"""The Home page's charts: a small ring of samples kept in the dashboard's memory.

Workers report what they processed and failed since they started; a rate is the growth of those
totals between two samples. A worker that restarts comes back under a new id with its totals at
zero, and one that is gone drops out: neither may turn into a negative rate, so each worker
counts only for what it grew between two samples that both saw it (or, for a worker that started
after the earlier sample, for all it reports).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pulsarjobs.operations.inspector import QueueStats, WorkerStatus

KEEP = 360  # samples: 30 minutes at one every 5 s


@dataclass(frozen=True, slots=True)
class Sample:
    at: datetime
    totals: dict[str, tuple[int, int]]  # worker -> (processed, failed) since its start
    started: dict[str, datetime]  # worker -> when it started
    waiting: int
    scheduled: int
    in_flight: int
    dead: int


@dataclass(frozen=True, slots=True)
class Point:
    """One point of the charts: rates between two samples, sizes at the later one."""

    at: float  # unix seconds
    processed_per_second: float
    failed_per_second: float
    waiting: int
    scheduled: int
    in_flight: int
    dead: int


def take_sample(
    at: datetime, queues: Sequence[QueueStats], workers: Sequence[WorkerStatus]
) -> Sample:
    return Sample(
        at=at,
        totals={worker.worker: (worker.processed, worker.failed) for worker in workers},
        started={worker.worker: worker.started_at for worker in workers},
        waiting=sum(queue.waiting for queue in queues),
        scheduled=sum(queue.scheduled for queue in queues),
        in_flight=sum(queue.in_flight for queue in queues),
        dead=sum(queue.dead for queue in queues),
    )


def growth(before: Sample, after: Sample) -> tuple[int, int]:
    """How many jobs the workers processed and failed between two samples; never negative."""
    processed = failed = 0
    for worker, (now_processed, now_failed) in after.totals.items():
        if worker in before.totals:
            then_processed, then_failed = before.totals[worker]
        elif after.started[worker] > before.at:
            then_processed = then_failed = 0  # started in between: all it did is new
        else:
            continue  # missed by the earlier sample: how much is new is unknown
        processed += max(0, now_processed - then_processed)
        failed += max(0, now_failed - then_failed)
    return processed, failed


def point(before: Sample, after: Sample) -> Point:
    seconds = (after.at - before.at).total_seconds()
    processed, failed = growth(before, after)
    return Point(
        at=after.at.timestamp(),
        processed_per_second=processed / seconds if seconds > 0 else 0.0,
        failed_per_second=failed / seconds if seconds > 0 else 0.0,
        waiting=after.waiting,
        scheduled=after.scheduled,
        in_flight=after.in_flight,
        dead=after.dead,
    )


class Samples:
    """The latest KEEP samples as chart points; safe to use from several request threads."""

    def __init__(self, keep: int = KEEP) -> None:
        self._points: deque[Point] = deque(maxlen=keep)
        self._last: Sample | None = None
        self._lock = threading.Lock()

    def add(self, sample: Sample) -> None:
        with self._lock:
            if self._last is not None and sample.at > self._last.at:
                self._points.append(point(self._last, sample))
            if self._last is None or sample.at > self._last.at:
                self._last = sample

    def points(self) -> list[Point]:
        with self._lock:
            return list(self._points)
