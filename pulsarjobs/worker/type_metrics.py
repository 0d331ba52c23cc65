"""A worker's counts by job type and queue, for the dashboard's Metrics page: the writer
(transport/metrics_reports.py) reports them each minute (wire/type_metrics.py says what a
report holds and how reports add up).

`TypeCounts` is a step of the pipeline (steps.py) on every job, told its verdict: it counts the
verdict and, for a job that ran, puts its run time and its wait (from when it was due to when
it started: now less its run time) into buckets — one dict lookup and three increments, under
a lock (runner threads count concurrently).
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import defaultdict
from typing import ClassVar

from pulsarjobs.wire.envelope import Envelope
from pulsarjobs.wire.type_metrics import RUN_BUCKETS, WAIT_BUCKETS, Row
from pulsarjobs.wire.verdicts import Outcome

MAX_ROWS = 1_000  # (type, queue) pairs in one report; past it, types count as OTHER
OTHER = "other"  # a bounded set: a producer of made-up job types cannot grow a report


def due_at(envelope: Envelope) -> float:
    """When it was due, as a timestamp: enqueued, or its run_at if later."""
    due = envelope.created_at
    if envelope.run_at is not None and envelope.run_at > due:
        due = envelope.run_at
    return due.timestamp()


class TypeCounts:
    """A step: counts by (job type, queue) since they were last `taken`."""

    name: ClassVar[str] = "metrics by type"

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], Row] = {}
        self._lock = threading.Lock()

    def told(self, queue: str, outcome: Outcome) -> None:
        envelope, ran = outcome.envelope, outcome.duration
        if ran is not None:  # it ran: how long, and how long it waited since it was due
            run = bisect_left(RUN_BUCKETS, ran)
            wait = bisect_left(WAIT_BUCKETS, time.time() - ran - due_at(envelope))
        with self._lock:
            row = self._rows.get((envelope.type, queue)) or self._new(envelope.type, queue)
            row.counts[outcome.kind.policy.counter] += 1
            if ran is not None:
                row.run[run] += 1
                row.wait[wait] += 1

    def taken(self) -> list[Row]:
        """What was counted since the last time, and start again from zero."""
        with self._lock:
            rows, self._rows = self._rows, {}
        return list(rows.values())

    def _new(self, job_type: str, queue: str) -> Row:
        """The row of a (type, queue) seen the first time in this period (under the lock); past
        MAX_ROWS, its queue's OTHER row, looked up again each time (the bound holds)."""
        if len(self._rows) >= MAX_ROWS:
            job_type = OTHER
            if (row := self._rows.get((OTHER, queue))) is not None:
                return row
        row = self._rows[job_type, queue] = Row(job_type, queue, defaultdict(int))
        return row
