"""What Home and Queues show, read once per poll interval however many pages ask.

The counts of waiting, scheduled, retrying and cancelled jobs are ReadyWork's (ready_work.py):
exact at any depth, each look reading only what reached the broker since the last. A deep first
read goes on over several looks; until it is through, counts are marked ("≥ scheduled",
"≤ waiting"). The rest (rates, in flight, dead, workers) is the broker's, read with at most
SUMMARY_SCAN messages per topic. One snapshot is shared between all requests for `max_age`
seconds: requests that come while one is being read wait for it rather than read again.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from pulsarjobs.clock import utc_now
from pulsarjobs.dashboard.samples import Samples, take_sample
from pulsarjobs.flow.debounce import Debounces
from pulsarjobs.flow.unique import UniqueKeys
from pulsarjobs.operations.browse import Browser
from pulsarjobs.operations.fair_keys import FairKeys
from pulsarjobs.operations.flow_report import FlowReport, flow_report
from pulsarjobs.operations.inspector import Inspector, QueueStats, WorkerStatus
from pulsarjobs.operations.outbox_lag import OutboxStatus
from pulsarjobs.operations.ready_work import ReadyWork

SUMMARY_SCAN = 1_000  # messages read per topic to tell scheduled jobs from waiting ones


@dataclass(frozen=True, slots=True)
class Totals:
    processed: int  # by the workers running now, since they started
    failed: int
    busy: int  # jobs running now
    concurrency: int
    waiting: int
    scheduled: int
    retrying: int  # jobs on the retry topics waiting out a backoff
    cancelled: int  # jobs cancelled, held until they come due
    dead: int
    exact: bool  # False: some queue's backlog was too long to read whole


@dataclass(frozen=True, slots=True)
class Snapshot:
    taken_at: datetime
    queues: tuple[QueueStats, ...]  # with ReadyWork's exact counts
    workers: tuple[WorkerStatus, ...]
    scan_limit: int
    flow: FlowReport  # limits and unique keys held
    outbox: OutboxStatus | None = None  # the outbox's lag, told by its relays; None: no relay
    fair: tuple[FairKeys, ...] = ()  # the fair queues' keys waiting (fair_keys.py)

    @property
    def totals(self) -> Totals:
        queues, workers = self.queues, self.workers
        return Totals(
            processed=sum(worker.processed for worker in workers),
            failed=sum(worker.failed for worker in workers),
            busy=sum(worker.busy for worker in workers),
            concurrency=sum(worker.concurrency for worker in workers),
            waiting=sum(queue.waiting for queue in queues),
            scheduled=sum(queue.scheduled for queue in queues),
            retrying=sum(queue.retrying or 0 for queue in queues),
            cancelled=sum(queue.cancelled or 0 for queue in queues),
            dead=sum(queue.dead for queue in queues),
            exact=all(queue.exact for queue in queues),
        )

    def workers_of(self, queue: str) -> int:
        return sum(1 for worker in self.workers if queue in worker.queues)


class Snapshots:
    def __init__(
        self,
        browser: Browser,
        samples: Samples,
        ready_work: ReadyWork,
        max_age: float,
        scan: int = SUMMARY_SCAN,
    ) -> None:
        self.browser = browser
        self.samples = samples
        self.ready_work = ready_work
        self.max_age = max_age
        self.scan = scan
        self._unique_keys: UniqueKeys | None = None  # made at the first read: no broker yet
        self._debounces: Debounces | None = None  # likewise
        self._latest: Snapshot | None = None
        self._read_at = 0.0  # monotonic
        self._lock = threading.Lock()

    def latest(self) -> Snapshot:
        with self._lock:
            if self._latest is None or time.monotonic() - self._read_at >= self.max_age:
                self._latest = self._read(self.browser.inspector)
                self._read_at = time.monotonic()
                self.samples.add(
                    take_sample(self._latest.taken_at, self._latest.queues, self._latest.workers)
                )
            return self._latest

    def close(self) -> None:
        with self._lock:
            if self._unique_keys is not None:
                self._unique_keys.close()
                self._unique_keys = None
            if self._debounces is not None:
                self._debounces.close()
                self._debounces = None

    def forget(self) -> None:
        """After a change: the next page reads afresh."""
        with self._lock:
            self._latest = None

    def _read(self, inspector: Inspector) -> Snapshot:
        # ReadyWork counts what is due and what later: no backlog is read twice for it
        queues = tuple(self.ready_work.exact(inspector.queues(self.scan, read_schedule=False)))
        rates = {queue.queue: queue.rate_limit for queue in queues if queue.rate_limit}
        workers = tuple(inspector.workers())
        if self._unique_keys is None:
            self._unique_keys = UniqueKeys(inspector.connection)  # read on at each snapshot
        if self._debounces is None:
            self._debounces = Debounces(inspector.connection)
        flow = flow_report(inspector.connection, self._unique_keys, rates, workers, self._debounces)
        outbox = inspector.outbox()
        fair = tuple(keys for q in queues if (keys := inspector.fair_keys(q.queue, self.scan)))
        return Snapshot(utc_now(), queues, workers, self.scan, flow, outbox, fair)
