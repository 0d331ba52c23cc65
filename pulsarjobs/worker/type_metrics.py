"""A worker's counts by job type and queue, for the dashboard's Metrics page: the writer
(transport/metrics_reports.py) reports them each minute (wire/type_metrics.py says what a
report holds and how reports add up).

`TypeCounts` is a step of the pipeline (steps.py) on every job: at `started`, the job's wait
since it was due goes into a bucket; at `told`, its verdict is counted and its run time goes
into a bucket — a dict lookup and a list increment each, under a lock (runner threads count
concurrently).
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


class TypeCounts:
    """A step: counts by (job type, queue) since they were last `taken`."""

    name: ClassVar[str] = "metrics by type"

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], Row] = {}
        self._lock = threading.Lock()

    def started(self, envelope: Envelope) -> None:
        """How long it waited since it was due (enqueued, or its run_at)."""
        due = envelope.created_at
        if envelope.run_at is not None and envelope.run_at > due:
            due = envelope.run_at
        index = bisect_left(WAIT_BUCKETS, time.time() - due.timestamp())
        with self._lock:
            row = self._rows.get((envelope.type, envelope.queue)) or self._new(
                envelope.type, envelope.queue
            )
            row.wait[index] += 1  # fmt: skip

    def told(self, queue: str, outcome: Outcome) -> None:
        job_type = outcome.envelope.type
        with self._lock:
            row = self._rows.get((job_type, queue)) or self._new(job_type, queue)
            row.counts[outcome.kind.policy.counter] += 1
            if outcome.duration is not None:
                row.run[bisect_left(RUN_BUCKETS, outcome.duration)] += 1

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
