"""The worker: its life — subscribe, run, turn quiet, stop — and nothing else.

The parts it runs live beside it: the feed (feed.py) fetches jobs by priority, the runners
(_runners.py) run them, the settler (settle.py) stores what replaces each job before it is
acknowledged, and presence (_presence.py) sends heartbeats and takes commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import threading
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pulsar
import structlog

from pulsarjobs.app_view import AppView
from pulsarjobs.errors import ConfigurationError
from pulsarjobs.logs import error_text
from pulsarjobs.transport.connection import crypto_key_reader
from pulsarjobs.transport.refusals import refusal
from pulsarjobs.transport.schema_registry import WriterSchemas
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.heartbeat import RUNNING_SHOWN, RunningJob, WorkerState
from pulsarjobs.worker._fair import LANE_PREFETCH, look_up_schemas
from pulsarjobs.worker._flow_control import WorkerFlow
from pulsarjobs.worker._following import Following
from pulsarjobs.worker._presence import Presence
from pulsarjobs.worker._queue_feed import Receiver
from pulsarjobs.worker._runners import Runners, make_runners
from pulsarjobs.worker._running import CurrentRuns
from pulsarjobs.worker._stats import WorkerStats
from pulsarjobs.worker._stop_signals import StopSignals
from pulsarjobs.worker.crashes import CrashGuard
from pulsarjobs.worker.execution import JobExecutor
from pulsarjobs.worker.feed import Feed, QueuePlan, keep_dead_letters, subscribe
from pulsarjobs.worker.group_collector import GroupCollector
from pulsarjobs.worker.judge import Judge
from pulsarjobs.worker.metrics import WorkerMetrics
from pulsarjobs.worker.pipeline import Pipeline, WallClockWaits
from pulsarjobs.worker.settle import Settler
from pulsarjobs.worker.steps import worker_steps
from pulsarjobs.workflows import results
from pulsarjobs.workflows.batch_tracker import BatchTracker

log = structlog.get_logger("pulsarjobs.worker")

MIN_PREFETCH = 32  # the default prefetch is 4 x concurrency (Celery's rule), at least this

__all__ = ["QueuePlan", "Worker"]


@dataclass
class _WorkerSession:
    """What exists while `run_async` runs, created together once the broker is reached."""

    loop: asyncio.AbstractEventLoop
    stop_requested: asyncio.Event
    feed: Feed | None = None
    current: CurrentRuns | None = None  # what runs now, and the cancelled job ids
    following: Following | None = None  # paused queues and cancelled jobs
    batches: BatchTracker | None = None  # counts batches' events, enqueues their callbacks
    flow: WorkerFlow | None = None  # unique keys and concurrency slots
    runners: list[Runners] = field(default_factory=list)
    threads: ThreadPoolExecutor | None = None
    presence: Presence | None = None
    crashes: CrashGuard | None = None  # in a group of processes: the supervisor's crash ledger
    groups: GroupCollector | None = None  # grouped jobs' members, held until their group runs
    quieting: asyncio.Future[None] | None = None


class Worker:
    def __init__(
        self,
        app: AppView,
        queues: str | Sequence[str] | None = None,
        *,
        concurrency: int = 10,
        prefetch: int | None = None,
        shutdown_timeout: float = 25.0,
        subscription: str | None = None,
        name: str | None = None,
        metrics: WorkerMetrics | None = None,
        crash_ledger: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigurationError(f"concurrency must be >= 1, got {concurrency}")
        self.app = app
        # The subscription this worker serves; the app's own settings stay as they are.
        self.settings = app.settings.with_changes(subscription=subscription or
                                                  app.settings.subscription)  # fmt: skip
        # Unless told which, every queue the app declares: a job on none of them would wait.
        self.plan = (
            QueuePlan.parse(queues)
            if queues is not None
            else QueuePlan.evenly(app.declared_queues())
        )
        self.concurrency = concurrency
        self.prefetch = prefetch or max(4 * concurrency, MIN_PREFETCH)
        # Jobs moved from the client to the runners at a time: enough that runners do not run
        # dry while the fetch thread waits for its turn, few enough not to hoard.
        self.ready_room = max(concurrency, self.prefetch // 4)
        self.shutdown_timeout = shutdown_timeout
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stats = WorkerStats.of(self.settings)
        self.metrics = metrics  # None: no metrics, and nothing paid for them per job
        self.crash_ledger = crash_ledger  # the directory of its supervisor's ledger, if any
        self.topics = {queue: topics_for(self.settings, queue) for queue in self.plan.names}
        self.ready = threading.Event()  # set once subscribed and fetching
        self._crypto = crypto_key_reader(self.settings)  # a missing key file fails here
        self._stop_asked = threading.Event()  # stop() may come before the loop runs
        self._running: _WorkerSession | None = None

    # -- running -----------------------------------------------------------------------------

    def run(self) -> None:
        """Run until SIGTERM or SIGINT (a second one exits at once); SIGTSTP turns quiet."""
        asyncio.run(self.run_async(handle_signals=True))

    async def run_async(self, handle_signals: bool = False) -> None:
        if self.metrics is not None:  # a port in use fails here, before the broker is asked
            self.metrics.start(self, asyncio.get_running_loop())
        try:
            await self._run(handle_signals)
        finally:
            if self.metrics is not None:
                self.metrics.stop()

    async def _run(self, handle_signals: bool) -> None:
        running = self._running = _WorkerSession(asyncio.get_running_loop(), asyncio.Event())
        self.app.hold()
        if self._stop_asked.is_set():
            running.stop_requested.set()
        if handle_signals:
            StopSignals(self.stop, self._go_quiet, self.shutdown_timeout).install(running.loop)
        consumers = await self._subscribe_until_ready(running.stop_requested)
        if consumers is None:  # stopped before the broker could be reached
            await asyncio.to_thread(self.app.release)
            return
        await asyncio.to_thread(results.prepare, self.app)
        self._build(running, consumers)
        await asyncio.to_thread(look_up_schemas, running.runners[0].pipeline.schemas, consumers)
        assert running.feed is not None and running.current is not None
        running.following = await asyncio.to_thread(
            Following.start, self.app.connection, running.feed, running.current
        )
        running.batches = await asyncio.to_thread(BatchTracker.start_or_warn, self.app, self.name)
        running.groups = await asyncio.to_thread(GroupCollector.start, self.app, self.plan.names,
                                                 self.settings.subscription, self.name,
                                                 running.current.cancelled)  # fmt: skip
        self._start(running)
        self.app.hooks.emit("on_worker_start", self)
        self.ready.set()
        log.info("worker started", worker=self.name, queues=list(self.plan.names),
                 concurrency=self.concurrency, strict=self.plan.strict,
                 runners=self._runner_kinds())  # fmt: skip
        running.presence = await Presence.start(self)  # heartbeats out, commands in
        await running.stop_requested.wait()
        await self._shutdown(running)

    def _build(self, running: _WorkerSession, consumers: Mapping[str, Receiver]) -> None:
        app, name, concurrency = self.app, self.name, self.concurrency
        running.threads = ThreadPoolExecutor(concurrency, thread_name_prefix="pulsarjobs-job")
        plain = {queue: consumers[queue] for queue in self.plan.names}
        ordered = {queue: consumers[f"{queue}-ordered"] for queue in self.plan.names}
        lanes = {queue: [consumers[topic.lane(i)] for i in range(self.settings.fair_lanes)]
                 for queue, topic in self.topics.items() if topic.lane(0) in consumers}  # fmt: skip
        feed = running.feed = Feed(self.plan, plain, self.ready_room, ordered, lanes)
        if self.crash_ledger is not None:
            running.crashes = CrashGuard(self.crash_ledger, concurrency)
            running.crashes.start()
        current = running.current = CurrentRuns(running.crashes, self._stop_asked)
        judge = Judge(app, name, app.clock, current)
        flow = running.flow = WorkerFlow(app, name, concurrency)
        steps = worker_steps(app, name, judge, self.stats, flow, self.metrics, running.crashes)
        pipeline = Pipeline(
            app, judge, JobExecutor(app, judge, current, running.threads),
            Settler(app, self.topics.__getitem__), WriterSchemas(self.settings), self.stats,
            steps, WallClockWaits(app.clock, lambda: feed.open), flow.slots,
        )  # fmt: skip
        running.runners = make_runners(app, feed, pipeline, concurrency, running.loop)

    def _start(self, running: _WorkerSession) -> None:
        assert running.feed is not None
        # What is built lives as long as the worker: no collection looks at it again (each
        # full one went through all of it); cycles dead by now are collected first.
        gc.collect()
        gc.freeze()
        running.feed.start()  # open before the runners start: they end once it closes
        for runners in running.runners:
            runners.start()  # each looks before it waits: no ring before this is missed

    def stop(self) -> None:
        """Ask the worker to shut down gracefully; from any thread, and again once stopped."""
        self._stop_asked.set()
        if (running := self._running) is not None and not running.loop.is_closed():
            running.loop.call_soon_threadsafe(running.stop_requested.set)

    def quiet(self) -> None:
        """Stop fetching jobs, finish the running ones, keep running; callable from any thread."""
        if (running := self._running) is not None and not running.loop.is_closed():
            running.loop.call_soon_threadsafe(self._go_quiet)

    def _go_quiet(self) -> None:
        running = self._running
        if running is None or running.feed is None or not running.feed.open:
            return
        log.info("quiet: no new jobs will be fetched", worker=self.name)
        running.quieting = asyncio.ensure_future(self._release_prefetched(running))

    async def _release_prefetched(self, running: _WorkerSession) -> None:
        """Once the running jobs are settled, close the consumers: the jobs their client had
        prefetched go back to the broker for other workers instead of waiting here."""
        assert running.feed is not None
        await self._stop_taking(running)
        await self._finish_running(running, timeout=float("inf"))
        await asyncio.to_thread(running.feed.close)

    async def _stop_taking(self, running: _WorkerSession) -> None:
        """Close the feed (what it fetched goes back) and let idle runners end."""
        assert running.feed is not None
        running.feed.open = False  # runners take no more from now on
        for runners in running.runners:
            runners.wake_all()
        await asyncio.to_thread(running.feed.stop)

    @staticmethod
    async def _finish_running(running: _WorkerSession, timeout: float) -> int:
        """Wait for every runner's jobs at once; how many were handed back, being late."""
        late = await asyncio.gather(*(runners.finish(timeout) for runners in running.runners))
        return sum(late)

    def _runner_kinds(self) -> str:
        running = self._running
        kinds = [runners.kind for runners in running.runners] if running else []
        return " and ".join(kinds)

    # -- subscribing -------------------------------------------------------------------------

    async def _subscribe_until_ready(
        self, stop_requested: asyncio.Event
    ) -> dict[str, pulsar.Consumer] | None:
        """Subscribe, retrying while the broker is out of reach; a refusal of access is final."""
        delay = 1.0
        while not stop_requested.is_set():
            try:
                return await asyncio.to_thread(self.app.connection.first_call, self._subscribe_all)
            except Exception as exc:
                denied = await asyncio.to_thread(refusal, self.settings, exc, "subscribing to jobs")
                if denied is not None:
                    await asyncio.to_thread(self.app.release)
                    raise denied from exc
                log.warning("cannot subscribe yet; retrying", error=error_text(exc), retry_in=delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop_requested.wait(), delay)
                delay = min(delay * 2, 30.0)
        return None

    def _subscribe_all(self) -> dict[str, pulsar.Consumer]:
        client = self.app.connection.client
        consumers: dict[str, pulsar.Consumer] = {}
        try:
            for queue, topics in self.topics.items():
                keep_dead_letters(client, topics)
                for ordered, name in ((False, queue), (True, f"{queue}-ordered")):
                    consumers[name] = subscribe(
                        client, topics, self.settings.subscription, self.prefetch,
                        self.ready_room, self.name, ordered, self._crypto,
                    )  # fmt: skip
                if queue in self.app.fair_queues():  # its lanes: a consumer each, by topic
                    for lane in range(self.settings.fair_lanes):
                        consumers[topics.lane(lane)] = subscribe(
                            client, topics, self.settings.subscription, LANE_PREFETCH,
                            self.ready_room, self.name, crypto=self._crypto, lane=lane,
                        )  # fmt: skip
        except Exception:
            for consumer in consumers.values():
                with contextlib.suppress(Exception):
                    consumer.close()
            raise
        return consumers

    # -- stopping ----------------------------------------------------------------------------

    async def _shutdown(self, running: _WorkerSession) -> None:
        assert running.feed is not None
        if running.presence is not None:
            running.presence.beat_soon()  # operators see "stopping" at once
        if running.feed.open:
            await self._stop_taking(running)
        # Which jobs are still running as the grace period ends: those handed back, by name.
        still: list[str] = []
        if (current := running.current) is not None:
            look = running.loop.call_later(
                self.shutdown_timeout,
                lambda: still.extend(
                    f"{run.envelope.type} {job_id}" for job_id, run in list(current.now.items())
                ),
            )
        late = await self._finish_running(running, self.shutdown_timeout)
        if current is not None:
            look.cancel()
        if late:
            log.warning(
                "jobs did not finish within the grace period; handed back", count=late, jobs=still
            )
        self.app.hooks.emit("on_worker_stop", self)
        if running.presence is not None:
            await running.presence.stop()  # its last heartbeat says "stopped"
        await asyncio.to_thread(self._close, running)
        log.info("worker stopped", worker=self.name, **self.stats.as_dict())

    def _close(self, running: _WorkerSession) -> None:
        assert running.feed is not None and running.threads is not None
        if running.groups is not None:  # before the flush: the groups it stores go out with it
            running.groups.stop()
        self.app.connection.flush()
        running.feed.close()  # unacked jobs go back to other workers at once
        running.threads.shutdown(wait=False, cancel_futures=True)
        for part in (running.following, running.batches, running.crashes, running.flow):
            if part is not None:
                part.stop()
        self.app.release()
        gc.unfreeze()  # what it built may be collected again

    # -- presence: what heartbeats report (see _presence.py) ------------------------------------

    @property
    def state(self) -> WorkerState:
        running = self._running
        if running is not None and running.stop_requested.is_set():
            return "stopping"
        fetching = running is not None and running.feed is not None and running.feed.open
        return "running" if fetching else "quiet"

    @property
    def busy(self) -> int:
        """Jobs running now."""
        running = self._running
        return sum(runners.busy for runners in running.runners) if running is not None else 0

    def prefetched(self, queue: str) -> int:
        """Jobs of a queue fetched and ready for a runner."""
        running = self._running
        queues = running.feed.queues if running is not None and running.feed else ()
        return next((q.waiting for q in queues if q.queue == queue), 0)

    @property
    def paused(self) -> frozenset[str]:
        """The queues it serves whose jobs it does not take now: they are paused."""
        feed = self._running.feed if self._running is not None else None
        return (
            frozenset(queue.queue for queue in feed.queues if queue.paused) if feed else frozenset()
        )

    @property
    def held_by_limit(self) -> int:
        """Jobs waiting for a concurrency slot."""
        running = self._running
        return running.flow.slots.waiting if running is not None and running.flow else 0

    @property
    def running_jobs(self) -> tuple[RunningJob, ...]:
        """The longest-running jobs, the longest first, as many as a heartbeat lists."""
        running = self._running
        if running is None or running.current is None:
            return ()
        return running.current.listed(RUNNING_SHOWN)

    @property
    def ended_jobs(self) -> tuple[RunningJob, ...]:
        """Jobs that ended lately having reported a progress (progress.py)."""
        running = self._running
        if running is None or running.current is None:
            return ()
        return running.current.ended_lately()
