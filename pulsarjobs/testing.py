"""Run jobs in memory, without a broker, in users' unit tests.

`TestRunner` swaps an in-memory transport into an App (transport/memory.py) and runs the
worker's own feed, runners and pipeline on it (worker/pipeline.py): every job goes through the
same stages as in a worker — retries, dead letters, expiry, never-early, unique keys, results,
chains, batches, an ordered key's retry holding its later jobs back, concurrency limits. Time is
virtual: draining jumps the clock to the next due job instead of sleeping, and an ordered job
waiting in place for its retry moves the clock to its time. Timeouts are still measured in real
seconds, and rate limits are not paced.

With `concurrency=1` (the default) jobs run one at a time, the next due first, as a queue would
hand them to a lone worker; a larger `concurrency` runs up to that many at once, as a worker
with `--concurrency` does, each slot refilled as its job settles. Cancels reach the jobs that
run, as a worker follows them (_following.py).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from pulsarjobs.app import App
from pulsarjobs.clock import utc_now
from pulsarjobs.errors import ConfigurationError
from pulsarjobs.flow.debounce import Debounces
from pulsarjobs.flow.fairness import FairTurns
from pulsarjobs.grouping.memory import MemoryGroups
from pulsarjobs.jobs import Job
from pulsarjobs.settings import Settings
from pulsarjobs.stand_ins import (
    InMemoryBatches,
    InMemoryResults,
    InMemorySignals,
    InMemorySteps,
    InMemoryUniqueKeys,
    MemoryCrashes,
    MemoryLimits,
    Recorder,
    RunCounter,
    VirtualWaits,
    cancel_pending,
)
from pulsarjobs.transport.memory import (
    InMemoryConnection,
    MemoryConsumer,
    MemoryKeyTable,
    MemoryMessage,
    Outstanding,
    PublishedMessage,
)
from pulsarjobs.transport.schema_registry import WriterSchemas
from pulsarjobs.transport.topics import (
    carries_jobs,
    fair_lane_index,
    is_dead_letter_topic,
    paused_topic,
    queue_of,
    results_topic,
    topics_for,
)
from pulsarjobs.wire.envelope import Envelope, EnvelopeError, decode
from pulsarjobs.wire.verdicts import Outcome
from pulsarjobs.worker._following import Following
from pulsarjobs.worker._runners import Runners, make_runners
from pulsarjobs.worker._running import CurrentRuns
from pulsarjobs.worker._stats import WorkerStats
from pulsarjobs.worker.execution import JobExecutor
from pulsarjobs.worker.feed import Feed, QueuePlan
from pulsarjobs.worker.judge import Judge
from pulsarjobs.worker.pipeline import Pipeline
from pulsarjobs.worker.settle import Settler
from pulsarjobs.worker.steps import UniqueKeysBack, worker_steps
from pulsarjobs.workflows.results import JobResult

__all__ = ["PublishedMessage", "TestRunner"]

WORKER = "pulsarjobs.testing"
T = TypeVar("T")
SETTLE_POLL_S = 0.0005  # how often a drain looks whether the jobs handed out have settled


@dataclass(order=True, frozen=True, slots=True)
class _Pending:
    due: datetime
    sequence: int  # publish order breaks ties, as on a topic
    message: MemoryMessage = field(compare=False)
    queue: str = field(compare=False)


@dataclass
class _Session:
    """The worker's parts, running on the in-memory transport while jobs are drained."""

    queues: frozenset[str]
    consumers: dict[str, MemoryConsumer]  # by feed: a queue, or `<queue>-ordered`
    feed: Feed
    runners: list[Runners]
    following: Following

    @property
    def busy(self) -> int:
        return sum(runners.busy for runners in self.runners)


class TestRunner:
    """`with TestRunner(app) as runner:` enqueue jobs as usual, then `runner.run_all()`."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, app: App, concurrency: int = 1) -> None:
        if concurrency < 1:
            raise ConfigurationError(f"concurrency must be >= 1, got {concurrency}")
        self.app = app
        self.concurrency = concurrency
        self._now = utc_now()
        self.connection = InMemoryConnection(app.settings, self._clock)
        self.done: list[Envelope] = []
        self.dead: list[Envelope] = []  # each with its last_error; the reason is in outcomes
        self.dead_letters: list[PublishedMessage] = []  # as the worker writes them
        self.expired: list[Envelope] = []
        self.cancelled: list[Envelope] = []  # by `app.cancel`: not run, or their result discarded
        self.outcomes: list[Outcome] = []  # every verdict, in order
        # Each list above holds the jobs a worker counter of the same name counts: a verdict's
        # policy names its counter (wire/verdicts.py).
        by_counter = dict(done=self.done, dead=self.dead, expired=self.expired,
                          cancelled=self.cancelled)  # fmt: skip
        self.stats = WorkerStats()
        self.batches = InMemoryBatches(app)
        self.results = InMemoryResults(self.connection, self._clock)  # what app.result reads
        self.steps = InMemorySteps()  # durable jobs' completed steps: `steps.value(id, name)`
        self.signals = InMemorySignals(app)  # what `app.signal` sends to: `signals.waiting()`
        self._pending: list[_Pending] = []
        self.groups = MemoryGroups(app)  # grouped jobs' members: `groups.pending`, `.stored`
        self._fair = False  # a fair job was enqueued: due jobs of a queue take turns by lane
        self._fair_turns = FairTurns(app.settings.fair_lanes)
        self._sequence = 0
        self._crashes = MemoryCrashes(self._clock)
        self._counter = RunCounter(self._crashes)
        self._outstanding = Outstanding()
        self._threads = ThreadPoolExecutor(thread_name_prefix="pulsarjobs-test-job")
        self._current = CurrentRuns()
        judge = Judge(app, WORKER, self._clock, self._current)
        steps = worker_steps(app, WORKER, judge, self.stats, flow=None, crashes=self._crashes,
                             debounced=True, indexed=False)  # fmt: skip
        steps += [UniqueKeysBack(self), Recorder(self.outcomes, by_counter)]
        self._pipeline = Pipeline(
            app, judge, JobExecutor(app, judge, self._current, self._threads),
            Settler(app, lambda queue: topics_for(app.settings, queue)),
            WriterSchemas(app.settings), self.stats, steps, VirtualWaits(self._move_to),
            MemoryLimits(app),
        )  # fmt: skip
        self._loop = asyncio.Runner()

    def __enter__(self) -> TestRunner:
        app = self.app
        if app.connection.in_memory:
            raise ConfigurationError("a TestRunner already runs this app's jobs: one at a time")
        self._previous = app.connection, app.clock, app.unique_keys, app.result_reader
        self._previous_steps = app.step_store, app.signals
        app.connection, app.clock, app.step_store = self.connection, self._clock, self.steps
        app.signals = self.signals
        app.unique_keys = InMemoryUniqueKeys(self.connection, self._clock)
        app.result_reader = self.results
        self._previous_debounces = app.debounces
        app.matching_jobs_cancelled = self._cancel_matching
        app.debounces = Debounces(self.connection, self._clock, MemoryKeyTable)
        self.app.hooks.add(self._counter)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        app = self.app
        app.connection, app.clock, app.unique_keys, app.result_reader = self._previous
        app.step_store, app.signals = self._previous_steps
        app.debounces = self._previous_debounces
        del app.matching_jobs_cancelled  # the App's own again
        self.app.hooks.remove(self._counter)
        self._loop.close()
        # A sync job that timed out cannot be stopped: leave its thread to finish alone.
        self._threads.shutdown(wait=False, cancel_futures=True)

    # -- time ------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The virtual clock: when jobs are created, due, expired, and when runs fail."""
        return self._now

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta(0):
            raise ValueError(f"the clock only moves forward; got {delta}")
        self._now += delta

    def _clock(self) -> datetime:
        return self._now

    def _move_to(self, at: datetime) -> None:
        self._now = max(self._now, at)

    # -- jobs ------------------------------------------------------------------------------

    @property
    def pending(self) -> list[Envelope]:
        """Jobs waiting to run, scheduled ones and retries included, the next due first."""
        self._collect()
        waiting = []
        for pending in sorted(self._pending):
            try:
                waiting.append(decode(pending.message.data(), None))
            except EnvelopeError:
                continue  # no job: dead as soon as it is run
        return waiting

    def runs(self, job: str | Job[Any, Any]) -> int:
        """How many times a job id, a job type or a declared job reached its handler."""
        return self._counter.count(job.name if isinstance(job, Job) else job)

    def run_all(self, max_runs: int = 10_000, until: datetime | None = None) -> None:
        """Run every job, retries included, moving the clock to each; with `until`, only the
        jobs due by then, and the clock ends at `until`."""
        self._run(self.run_all_async(max_runs, until))

    def run_next(self) -> Outcome | None:
        """Run the next job that is due now, if any; the clock does not move."""
        return self._run(self.run_next_async())

    def _run(self, draining: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # none runs here: the runner's own loop can
            return self._loop.run(draining)
        draining.close()
        raise RuntimeError("in an event loop, await runner.run_all_async() or run_next_async()")

    async def run_all_async(self, max_runs: int = 10_000, until: datetime | None = None) -> None:
        """`run_all` for tests that run in an event loop."""
        await self._drain(max_runs, until, moves_clock=True)
        if until is not None:
            self._now = max(self._now, until)

    async def run_next_async(self) -> Outcome | None:
        """`run_next` for tests that run in an event loop."""
        told = len(self.outcomes)
        await self._drain(1, self._now, moves_clock=False, at_most=1)
        return self.outcomes[-1] if len(self.outcomes) > told else None

    def crash_process_in(self, job: str | Job[Any, Any], times: int = 1) -> None:
        """The worker process dies in the next `times` runs of `job` (a declared job, a job type
        or a job id), each once its run is over and before it is acknowledged: the handler's
        own effects happened, and the job comes back as it would to a group of worker processes
        — `deferred` a few seconds, then run again; `dead` once it was running in
        CRASHES_BEFORE_DEAD processes that died."""
        self._crashes.doomed[job.name if isinstance(job, Job) else job] += times

    def settled(self, outcome: Outcome) -> None:
        """A unique job's key goes back once its verdict no longer keeps it."""
        if not outcome.kind.policy.keeps_unique_key:
            assert outcome.envelope.unique_key is not None
            self.app.unique_keys.release(outcome.envelope.unique_key, outcome.envelope.id)

    def _cancel_matching(
        self, settings: Settings, keys: Mapping[str, object], queue: str | None
    ) -> int:
        """`app.cancel_matching` on the jobs waiting here, as on the broker's."""
        return cancel_pending(self.app, self.connection, self.pending, keys, queue, self._now,
                              self.groups.pending)  # fmt: skip

    # -- draining --------------------------------------------------------------------------

    async def _drain(
        self, max_runs: int, until: datetime | None, moves_clock: bool, at_most: int = 0
    ) -> None:
        """Hand due jobs to the worker's parts as its runners free up, at most `concurrency`
        out at once, as a broker delivers them; the clock moves on to the next due job once
        every job handed out has settled."""
        session: _Session | None = None
        handed = 0
        try:
            while (head := self._due_head(until if moves_clock else self._now)) is not None:
                if session is None or head.queue not in session.queues:
                    if session is not None:
                        await self._stop(session)
                    session = self._start()
                self._now = max(self._now, head.due)
                while True:
                    enough = at_most and handed >= at_most  # run_next: one job
                    free = self._outstanding.count < self.concurrency and not enough
                    head = self._due_head(self._now) if free else None
                    if head is not None and head.queue in session.queues:
                        if handed == max_runs:
                            raise RuntimeError(f"jobs are still pending after {max_runs} runs: "
                                               "does a job enqueue itself?")  # fmt: skip
                        self._take(head)
                        name = head.queue + ("-ordered" if head.message.partition_key() else "")
                        session.consumers[name].hand(head.message)
                        handed += 1
                    elif self._outstanding.count or session.busy:
                        await asyncio.sleep(SETTLE_POLL_S)
                    else:
                        break
                if at_most and handed >= at_most:
                    return
        finally:
            if session is not None:
                await self._stop(session)

    def _start(self) -> _Session:
        """The worker's feed and runners over consumers in memory, for every queue with jobs
        and every queue the app declares."""
        names = sorted(
            {pending.queue for pending in self._pending} | set(self.app.declared_queues())
        )
        outstanding, dies_at = self._outstanding, self._crashes.dies_at
        consumers = {name: MemoryConsumer(outstanding, dies_at) for name in names}
        ordered = {name: MemoryConsumer(outstanding, dies_at) for name in names}
        plan = QueuePlan.parse(names)  # in order: the pending jobs' due times choose, not weights
        feed = Feed(plan, consumers, self.concurrency, ordered)
        loop = asyncio.get_running_loop()
        runners = make_runners(self.app, feed, self._pipeline, self.concurrency, loop)
        feed.start()
        for each in runners:
            each.start()
        consumers.update({f"{name}-ordered": consumer for name, consumer in ordered.items()})
        # cancels reach the jobs running, as in a worker; a paused queue's jobs are never
        # handed out here (_due_head)
        following = Following.start(self.connection, feed, self._current, pauses=False)
        return _Session(frozenset(names), consumers, feed, runners, following)

    async def _stop(self, session: _Session) -> None:
        session.following.stop()
        session.feed.open = False
        for runners in session.runners:
            runners.wake_all()
        for consumer in session.consumers.values():
            consumer.close()
        await asyncio.to_thread(session.feed.stop)
        await asyncio.gather(*(runners.finish(float("inf")) for runners in session.runners))
        for consumer in session.consumers.values():
            for message in consumer.left():  # not acknowledged: it comes round again, in place
                self._push(message, self._now)

    def _due_head(self, horizon: datetime | None) -> _Pending | None:
        """The next job to run, if it is due by `horizon` (None: whenever it is due). A paused
        queue's jobs wait, as workers leave them stored (`app.pause`)."""
        self._collect()
        while self.groups.store_next(horizon, self._pending, self._move_to):  # before the jobs
            self._collect()
        paused = self.connection.marks.get(paused_topic(self.app.settings))
        if not paused:
            head = self._pending[0] if self._pending else None
        else:
            head = min((job for job in self._pending if job.queue not in paused), default=None)
        if head is None or (horizon is not None and head.due > horizon):
            return None
        return self._fair_turns.head(self._pending, head, self._now) if self._fair else head

    def _take(self, pending: _Pending) -> None:
        if self._pending[0] is pending:
            heapq.heappop(self._pending)
        else:  # the first due of a queue not paused
            self._pending.remove(pending)
            heapq.heapify(self._pending)

    def _collect(self) -> None:
        """Sort what was published since the last look, as the broker and a worker would."""
        while published := self.connection.take():  # settling on arrival publishes too
            for message in published:  # a grouped job's member waits in its group
                if not self.groups.held(message, self._now):
                    self._collect_one(message)

    def _collect_one(self, published: PublishedMessage) -> None:
        if is_dead_letter_topic(published.topic):
            self.dead_letters.append(published)
        elif published.topic == results_topic(self.app.settings):
            result = JobResult.decode(published.data)
            self.results.stored[result.job_id] = result
        elif not carries_jobs(published.topic):  # a batch's event: counted as a worker would
            self.batches.count(published.data)
        else:
            self._sequence += 1
            self._push(MemoryMessage(published, self._sequence), published.due)

    def _push(self, message: MemoryMessage, due: datetime) -> None:
        queue = queue_of(self.app.settings, message.topic_name())
        self._fair = self._fair or fair_lane_index(message.topic_name()) is not None
        heapq.heappush(self._pending, _Pending(due, message.sequence, message, queue))
