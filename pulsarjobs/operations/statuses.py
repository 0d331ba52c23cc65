"""What the Inspector tells of a queue and of a worker (inspector.py): frozen records, so that
the CLI, `--json`, the dashboard and /metrics show the same numbers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pulsarjobs.operations.pending_groups import NO_GROUPS, PendingGroups
from pulsarjobs.operations.retention import KEPT_FOREVER, DeadRetention
from pulsarjobs.wire.heartbeat import RunningJob, SeenState


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    waiting: int  # due, not yet handed to a worker
    scheduled: int  # due later: enqueued with in_/at, or a retry waiting for its backoff
    in_flight: int  # handed to a worker (running or held), not yet acknowledged
    dead: int  # on the dead-letter topic, not replayed or purged
    rate_in: float  # jobs enqueued per second (the broker's recent average)
    rate_out: float  # jobs acknowledged per second, retries included
    consumers: int  # worker processes reading the queue
    oldest_seconds: float | None  # how long the oldest due job (waiting or running) has been due
    exact: bool  # False when the backlog was too long to read whole: `scheduled` is then a floor
    paused: bool = False  # workers take none of its jobs until it is resumed
    rate_limit: int | None = None  # at most this many start a second (rates.py); None: no limit
    dead_retention: DeadRetention = KEPT_FOREVER  # how long and how much of `dead` is kept
    # Counted only by a full read (ready_work.py, which then makes `waiting` and `scheduled`
    # exact and excludes these from them); None: not counted.
    retrying: int | None = None  # due later on the retry topic, waiting out a backoff
    cancelled: int | None = None  # held until due, then dropped by a worker
    grouping: PendingGroups = NO_GROUPS  # grouped jobs' members waiting for their group to run


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    worker: str
    state: SeenState
    host: str
    pid: int
    subscription: str
    queues: tuple[str, ...]
    concurrency: int
    busy: int  # jobs running now
    processed: int
    failed: int
    rss_bytes: int | None
    started_at: datetime
    last_seen: datetime
    silent_seconds: float
    running: tuple[RunningJob, ...] = ()  # the longest running first, at most 100 (`busy`: all)
    held_by_limit: int = 0  # jobs waiting for a concurrency slot
    ended: tuple[RunningJob, ...] = ()  # ended lately having reported a progress (progress.py)
