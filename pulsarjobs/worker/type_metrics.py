"""A worker's counts by job type and queue, for the dashboard's Metrics page: the writer
(transport/metrics_reports.py) reports them each minute (wire/type_metrics.py says what a
report holds and how reports add up).

The worker's counters (`WorkerStats`, _stats.py) count each verdict here too, under their own
lock (runner threads count concurrently): a step of its own would cost every job a second call
and a second lock. For a job that ran, its run time and its wait (from when it was due to when
it started: now less its run time) go into buckets — one dict lookup and three increments.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import defaultdict

from pulsarjobs.wire.type_metrics import RUN_BUCKETS, WAIT_BUCKETS, Row
from pulsarjobs.wire.verdicts import Outcome

MAX_ROWS = 1_000  # (type, queue) pairs in one report; past it, types count as OTHER
OTHER = "other"  # a bounded set: a producer of made-up job types cannot grow a report


class TypeCounts:
    """Counts by (job type, queue) since they were last `taken`; `lock` is the counters'."""

    def __init__(self, lock: threading.Lock) -> None:
        self._rows: dict[tuple[str, str], Row] = {}
        self._lock = lock

    def count(self, queue: str, outcome: Outcome, counter: str) -> None:
        """One more verdict (its `counter`), with its run; the caller holds the lock."""
        envelope, ran = outcome.envelope, outcome.duration
        row = self._rows.get((envelope.type, queue)) or self._new(envelope.type, queue)
        row.counts[counter] += 1
        if ran is not None:  # it ran: how long, and how long it waited since it was due
            due = envelope.created_at  # enqueued, or its run_at if later
            if envelope.run_at is not None and envelope.run_at > due:
                due = envelope.run_at
            row.run[bisect_left(RUN_BUCKETS, ran)] += 1
            row.wait[bisect_left(WAIT_BUCKETS, time.time() - ran - due.timestamp())] += 1

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
