"""Run jobs in memory, without a broker, in users' unit tests.

`TestRunner` swaps an in-memory connection into an App: enqueued jobs are encoded as for Pulsar
and kept in memory, then decoded and run by the worker's own `JobExecutor`, so retries, dead
letters, expiry and never-early behave as on the broker. Time is virtual: draining jumps the
clock to the next due job instead of sleeping. Timeouts are still measured in real seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, NoReturn

from pulsarjobs.app import App
from pulsarjobs.clock import Clock, utc_now
from pulsarjobs.errors import ConfigurationError
from pulsarjobs.flow.unique import UniqueKeys
from pulsarjobs.jobs import Job
from pulsarjobs.middleware import Middleware
from pulsarjobs.operations.cancels import Cancel
from pulsarjobs.settings import Settings
from pulsarjobs.transport.connection import Acks, Connection
from pulsarjobs.transport.topics import (
    cancelled_topic,
    carries_jobs,
    is_dead_letter_topic,
    queue_of,
    results_topic,
    topics_for,
)
from pulsarjobs.wire.envelope import Envelope
from pulsarjobs.wire.values import JobArg
from pulsarjobs.wire.verdicts import Outcome
from pulsarjobs.worker.execution import JobExecutor
from pulsarjobs.worker.settle import Delivery, Settler
from pulsarjobs.workflows import batches
from pulsarjobs.workflows.batch_state import BatchState, due_callbacks
from pulsarjobs.workflows.result_reader import ResultReader, no_result
from pulsarjobs.workflows.results import JobResult

WORKER = "pulsarjobs.testing"


@dataclass(frozen=True, slots=True)
class PublishedMessage:
    topic: str
    data: bytes
    due: datetime  # when the broker would deliver it
    properties: Mapping[str, str]


class InMemoryConnection(Connection):
    """Stands in for the broker: keeps what is published, in order, until it is taken."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        super().__init__(settings)
        self.clock = clock
        self._published: list[PublishedMessage] = []
        self._published_lock = threading.Lock()  # sync jobs enqueue from worker threads
        self.marks: dict[str, dict[str, bytes]] = {}  # by topic, then key (see marks.py)

    @property
    def client(self) -> NoReturn:
        raise ConfigurationError(
            "the in-memory connection has no Pulsar client: under TestRunner, run jobs with "
            "runner.run_all() or runner.run_next(), not with a Worker"
        )

    def prepare_queue(self, topic: str, subscription: str, key_shared: bool = False) -> None:
        """Nothing to prepare: no message is lost in memory."""

    def prepared(self, topic: str) -> bool:
        return True

    def ready(self, topic: str, scheduled: bool = False) -> bool:
        """Publishing to memory never blocks."""
        return True

    def message_ttl(self) -> float | None:
        """Memory keeps messages for ever."""
        return None

    def keep_results(self, topic: str, seconds: float) -> None:
        """Memory keeps results for ever (each says when it expires)."""

    def put_mark(self, topic: str, key: str, value: bytes) -> None:
        """Kept in memory, as the broker keeps marks; an empty value removes the mark."""
        with self._published_lock:
            marks = self.marks.setdefault(topic, {})
            if value:
                marks[key] = value
            else:
                marks.pop(key, None)

    def _send(
        self,
        topic: str,
        data: bytes,
        deliver_at: datetime | None,
        properties: dict[str, str] | None,
        key: str | None,
        acks: Acks,
    ) -> None:
        now = self.clock()
        due = now if deliver_at is None else max(deliver_at, now)
        with self._published_lock:
            self._published.append(PublishedMessage(topic, data, due, properties or {}))
        acks.ok()

    def take(self) -> list[PublishedMessage]:
        """Every message published since the last take, oldest first."""
        with self._published_lock:
            taken, self._published = self._published, []
        return taken


class InMemoryUniqueKeys(UniqueKeys):
    """The held unique keys in memory: one lock for all, nothing to read."""

    def __init__(self, connection: InMemoryConnection, clock: Clock) -> None:
        super().__init__(connection, clock)
        self._memory_lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[Callable[[bytes], None]]:
        with self._memory_lock:
            yield lambda data: self._apply(key, data)

    def _catch_up(self) -> None:
        """Memory has it all."""

    def close(self) -> None:
        """Nothing to close."""


class InMemoryBatches:
    """Batches counted as a worker counts them (batch_tracker.py): callbacks enqueued once."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.states: dict[str, BatchState] = {}  # by batch id: its progress() for a test
        self._ended: set[str] = set()

    def count(self, data: bytes) -> None:
        event = json.loads(data)
        state = self.states.setdefault(event["batch"], BatchState(event["batch"]))
        if state.id in self._ended:
            return
        state.apply(event)
        if state.complete:
            self._ended.add(state.id)
            for envelope in due_callbacks(state).values():
                self.app.publish_envelope(envelope)
            if state.parent is not None:
                told = batches.event("settled", state.parent, job=state.id, ok=state.all_succeeded)
                batches.publish(self.app, state.parent, told)


class InMemoryResults(ResultReader):
    """The kept results, as the jobs run by the runner stored them: asked for, a result is
    there or not (nothing runs while a test waits), and expires by the virtual clock."""

    def __init__(self, connection: InMemoryConnection, clock: Clock) -> None:
        super().__init__(connection, clock)
        self.stored: dict[str, JobResult] = {}

    def wait(self, job_id: str, timeout: float | None) -> JobArg:
        result = self.stored.get(job_id)
        if result is None or result.expires_at <= self.clock():
            raise no_result(job_id, timeout)
        return result.get()

    async def wait_async(self, job_id: str, timeout: float | None) -> JobArg:
        return self.wait(job_id, timeout)

    def close(self) -> None:
        """Nothing to close."""


@dataclass(order=True, frozen=True, slots=True)
class _Pending:
    due: datetime
    sequence: int  # publish order breaks ties, as on a topic
    envelope: Envelope = field(compare=False)
    delivery: Delivery = field(compare=False)


class _RunCounter(Middleware):
    """Counts runs that reach the handler, by job id and by job type."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()

    def before_process(self, envelope: Envelope) -> None:
        self.runs[envelope.id] += 1
        self.runs[envelope.type] += 1


class TestRunner:
    """`with TestRunner(app) as runner:` enqueue jobs as usual, then `runner.run_all()`."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, app: App) -> None:
        self.app = app
        self._now = utc_now()
        self.connection = InMemoryConnection(app.settings, self._clock)
        self.done: list[Envelope] = []
        self.dead: list[Envelope] = []  # each with its last_error; the reason is in outcomes
        self.dead_letters: list[PublishedMessage] = []  # as the worker writes them
        self.expired: list[Envelope] = []
        self.cancelled: list[Envelope] = []  # by `app.cancel`: not run, or their result discarded
        self.outcomes: list[Outcome] = []  # of every run, in order
        # Each list above holds the jobs a worker counter of the same name counts: a verdict's
        # policy names its counter (wire/verdicts.py).
        self._settled_as = dict(done=self.done, dead=self.dead, expired=self.expired,
                                cancelled=self.cancelled)  # fmt: skip
        self.batches = InMemoryBatches(app)
        self._queue: list[_Pending] = []
        self._sequence = 0
        self._counter = _RunCounter()
        self._threads = ThreadPoolExecutor(thread_name_prefix="pulsarjobs-test-job")
        self._executor = JobExecutor(app, WORKER, self._threads, clock=self._clock)
        self._settler = Settler(app, lambda queue: topics_for(app.settings, queue), WORKER)
        self._loop = asyncio.Runner()
        self.results = InMemoryResults(self.connection, self._clock)  # what app.result reads

    def __enter__(self) -> TestRunner:
        app = self.app
        self._previous = app.connection, app.clock, app.unique_keys, app.result_reader
        app.connection, app.clock = self.connection, self._clock
        app.unique_keys = InMemoryUniqueKeys(self.connection, self._clock)
        app.result_reader = self.results
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

    # -- jobs ------------------------------------------------------------------------------

    @property
    def pending(self) -> list[Envelope]:
        """Jobs waiting to run, scheduled ones and retries included, the next due first."""
        self._collect()
        return [waiting.envelope for waiting in sorted(self._queue)]

    def runs(self, job: str | Job[Any, Any]) -> int:
        """How many times a job id, a job type or a declared job reached its handler."""
        return self._counter.runs[job.name if isinstance(job, Job) else job]

    def run_all(self, max_runs: int = 10_000, until: datetime | None = None) -> None:
        """Run every job, retries included, moving the clock to each; with `until`, only the
        jobs due by then, and the clock ends at `until`."""
        self._loop.run(self.run_all_async(max_runs, until))

    def run_next(self) -> Outcome | None:
        """Run the next job that is due now, if any; the clock does not move."""
        return self._loop.run(self.run_next_async())

    async def run_all_async(self, max_runs: int = 10_000, until: datetime | None = None) -> None:
        """`run_all` for tests that run in an event loop."""
        runs = 0
        while (head := self._due_head(until)) is not None:
            if runs == max_runs:
                raise RuntimeError(
                    f"jobs are still pending after {max_runs} runs: does a job enqueue itself?"
                )
            self._now = max(self._now, head.due)
            await self._run_head()
            runs += 1
        if until is not None:
            self._now = max(self._now, until)

    async def run_next_async(self) -> Outcome | None:
        """`run_next` for tests that run in an event loop."""
        return None if self._due_head(self._now) is None else await self._run_head()

    def _due_head(self, horizon: datetime | None) -> _Pending | None:
        """The next job to run, if it is due by `horizon` (None: whenever it is due)."""
        self._collect()
        if not self._queue or (horizon is not None and self._queue[0].due > horizon):
            return None
        return self._queue[0]

    async def _run_head(self) -> Outcome:
        pending = heapq.heappop(self._queue)
        self._follow_cancels()
        outcome = await self._executor.run(pending.envelope)
        self._settle(pending.delivery, pending.envelope.queue, outcome)
        return outcome

    def _settle(self, delivery: Delivery, queue: str, outcome: Outcome) -> None:
        """As the worker does: what replaces the job is published (a retry or an early job to
        the subscription's retry topic, a dead letter to its dead-letter topic); memory stores it at
        once."""
        self.outcomes.append(outcome)
        stored = self._settler.store(queue, delivery, outcome)
        if stored is not None:
            stored.result()
        envelope = outcome.envelope
        policy = outcome.kind.policy
        if envelope.unique_key is not None and not policy.keeps_unique_key:
            self.app.unique_keys.release(envelope.unique_key, envelope.id)
        if (settled_as := self._settled_as.get(policy.counter)) is not None:
            settled_as.append(outcome.envelope)

    def _follow_cancels(self) -> None:
        """What `app.cancel` stored, as a worker follows it."""
        marks = self.connection.marks.get(cancelled_topic(self.app.settings), {})
        cancelled = {job_id: Cancel.decode(mark).cancelled_at for job_id, mark in marks.items()}
        self._executor.running.cancelled = cancelled

    def _collect(self) -> None:
        """Decode what was published since the last look, as a worker receiving it would."""
        while messages := self.connection.take():  # settling on arrival publishes too
            self._collect_some(messages)

    def _collect_some(self, messages: list[PublishedMessage]) -> None:
        for message in messages:
            if is_dead_letter_topic(message.topic):
                self.dead_letters.append(message)
                continue
            if message.topic == results_topic(self.app.settings):
                result = JobResult.decode(message.data)
                self.results.stored[result.job_id] = result
                continue
            if not carries_jobs(message.topic):  # a batch's event: counted as a worker would
                self.batches.count(message.data)
                continue
            self._sequence += 1
            delivery = Delivery(message.topic, f"memory:{self._sequence}", message.data)
            queue = queue_of(self.app.settings, message.topic)
            decoded = self._settler.decode(delivery, None)
            if isinstance(decoded, Outcome):  # no job at all: dead on arrival
                self._settle(delivery, queue, decoded)
                continue
            pending = _Pending(message.due, self._sequence, decoded, delivery)
            heapq.heappush(self._queue, pending)
