"""The jobs a worker runs now, and the cancelled job ids it knows of.

The JobExecutor adds a run here when it starts and removes it when it ends (one dict insert and
one removal per job; in a group of processes also a slot of the crash ledger, crashes.py). A
cancel mark (cancels.py) arrives on the Pulsar client's listener thread: it is remembered for
the deliveries to come and, when the job runs now, stops it — an async run's task is cancelled
on its event loop, while a sync run cannot be stopped and is only marked, so that its result is
discarded. Heartbeats list the longest-running jobs from here, with the progress each last
reported (progress.py: one attribute write on the Run, no I/O), and the jobs that ended lately
having reported one, for PROGRESS_KEPT_AFTER.
"""

from __future__ import annotations

import asyncio
import heapq
import threading
import time
from collections import OrderedDict
from datetime import datetime, timedelta

from pulsarjobs.clock import utc_now
from pulsarjobs.wire.envelope import Envelope
from pulsarjobs.wire.heartbeat import (
    ENDED_SHOWN,
    PROGRESS_KEPT_AFTER,
    PROGRESS_MESSAGE_SHOWN,
    Progress,
    RunningJob,
)
from pulsarjobs.worker.crashes import CrashGuard

Reported = tuple[float, float | None, str]  # done, total, message: a tuple is cheapest to make


class Run:
    """One job running now."""

    __slots__ = (
        "cancelled", "envelope", "interrupted", "progress", "slot", "started", "stopping", "task",
    )  # fmt: skip

    def __init__(self, envelope: Envelope, started: float, task: asyncio.Task[None] | None):
        self.envelope = envelope
        self.started = started  # time.perf_counter() when it started
        self.task = task  # the task an async run runs in; None for a sync run
        self.cancelled = False  # its cancel came while it ran: its outcome is `cancelled`
        self.interrupted = False  # its task was cancelled for it
        self.slot = -1  # where the crash ledger holds its id, if anywhere
        self.progress: Reported | None = None  # the last the job reported, from any thread
        self.stopping = NEVER_STOPS  # set once its worker is asked to stop (CurrentRuns.start)

    def seen(self, wall: datetime, clock: float, ended_at: datetime | None = None) -> RunningJob:
        """As a heartbeat tells of it; `wall` and `clock` are now on both clocks."""
        envelope, reported, progress = self.envelope, self.progress, None
        if reported is not None:  # a long message would swell every heartbeat
            done, total, message = reported
            progress = Progress(done, total, message[:PROGRESS_MESSAGE_SHOWN])
        return RunningJob(
            job_id=envelope.id,
            type=envelope.type,
            queue=envelope.queue,
            started_at=wall - timedelta(seconds=clock - self.started),
            progress=progress,
            ended_at=ended_at,
        )


NEVER_STOPS = threading.Event()  # a run's own, until CurrentRuns hands it its worker's


class CurrentRuns:
    def __init__(
        self, crashes: CrashGuard | None = None, stopping: threading.Event | None = None
    ) -> None:
        self.stopping = stopping or threading.Event()  # set once the worker is asked to stop
        self.now: dict[str, Run] = {}  # by job id
        self.cancelled: dict[str, datetime] = {}  # job id -> cancelled at
        self.crashes = crashes  # in a group of processes: what runs, for the supervisor
        self.ended: OrderedDict[str, RunningJob] = OrderedDict()  # with a progress, by job id
        self._ended_lock = threading.Lock()  # runner threads end jobs concurrently

    def start(self, run: Run) -> None:
        """A run starts: registered before its job's code runs (a cancel cannot slip by)."""
        self.now[run.envelope.id] = run
        run.stopping = self.stopping
        if self.crashes is not None:
            run.slot = self.crashes.started(run.envelope.id)

    def end(self, run: Run) -> None:
        if self.crashes is not None:
            self.crashes.ended(run.slot)
        self.now.pop(run.envelope.id, None)
        if run.progress is not None:  # its last progress stays in sight a while
            now = utc_now()
            seen = run.seen(now, time.perf_counter(), ended_at=now)
            with self._ended_lock:
                self.ended[seen.job_id] = seen
                self.ended.move_to_end(seen.job_id)
                if len(self.ended) > ENDED_SHOWN:
                    self.ended.popitem(last=False)

    def cancel(self, job_id: str, at: datetime) -> None:
        """A job was cancelled at `at`: its copies created until then must not run, and one
        running now stops. Callable from any thread."""
        self.cancelled[job_id] = at
        run = self.now.get(job_id)
        if run is None or run.envelope.created_at > at:
            return
        run.cancelled = True
        if run.task is not None:
            run.task.get_loop().call_soon_threadsafe(self._interrupt, run)

    def forget(self, job_id: str) -> None:
        self.cancelled.pop(job_id, None)

    def _interrupt(self, run: Run) -> None:
        """On the run's loop: cancel its task, unless the run has ended meanwhile (the task
        then runs other jobs)."""
        if self.now.get(run.envelope.id) is run and run.task is not None and not run.interrupted:
            run.interrupted = True
            run.task.cancel()

    def listed(self, limit: int) -> tuple[RunningJob, ...]:
        """The `limit` longest-running jobs, the longest first."""
        runs = heapq.nsmallest(limit, list(self.now.values()), key=lambda run: run.started)
        wall, clock = utc_now(), time.perf_counter()
        return tuple(run.seen(wall, clock) for run in runs)

    def ended_lately(self) -> tuple[RunningJob, ...]:
        """Jobs that ended within PROGRESS_KEPT_AFTER having reported a progress, the latest
        last; older ones are forgotten."""
        since = utc_now() - PROGRESS_KEPT_AFTER
        with self._ended_lock:
            while self.ended:
                oldest = next(iter(self.ended.values()))
                if oldest.ended_at is None or oldest.ended_at >= since:
                    break
                self.ended.popitem(last=False)
            return tuple(self.ended.values())
