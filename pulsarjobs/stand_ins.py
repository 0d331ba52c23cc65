"""What the in-memory TestRunner (testing.py) puts in place of what lives on the broker:
unique keys, kept results, batch counting, concurrency limits, and waiting on the clock.

Each behaves as its broker twin does for one worker: a unique key is held until its job no
longer keeps it; a result is there once its job stored it, until it expires by the virtual
clock; a batch's callbacks are enqueued once, when its last job is over; at most N jobs of a
concurrency limit's key run at once. Rate limits are not paced: the clock is virtual.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime
from typing import Any

from pulsarjobs.app import App
from pulsarjobs.app_view import AppView
from pulsarjobs.clock import Clock
from pulsarjobs.flow.unique import UniqueKeys
from pulsarjobs.grouping.buffer import PendingGroup
from pulsarjobs.middleware import Middleware
from pulsarjobs.operations.cancel_matching import matches
from pulsarjobs.operations.cancels import Cancel
from pulsarjobs.transport.memory import InMemoryConnection, MemoryKeyTable, MemoryMessage
from pulsarjobs.transport.topics import cancelled_topic
from pulsarjobs.wire.envelope import Envelope, EnvelopeError, decode
from pulsarjobs.wire.values import JobArg
from pulsarjobs.wire.verdicts import Outcome
from pulsarjobs.worker.crashes import Crashes
from pulsarjobs.worker.steps import Step
from pulsarjobs.workflows import batches
from pulsarjobs.workflows.batch_state import BatchState, due_callbacks
from pulsarjobs.workflows.durable_store import decode_step, step_key
from pulsarjobs.workflows.result_reader import ResultReader, no_result
from pulsarjobs.workflows.results import JobResult
from pulsarjobs.workflows.signals import SignalBoard, SignalingApp


class InMemoryUniqueKeys(UniqueKeys):
    """The held unique keys in memory: one lock for all, the holds kept as marks."""

    def __init__(self, connection: InMemoryConnection, clock: Clock) -> None:
        super().__init__(connection, clock, MemoryKeyTable)
        self._memory_lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[Callable[[bytes], None]]:
        with self._memory_lock:
            yield lambda data: self.connection.put_mark(self.topic, key, data)


class InMemoryBatches:
    """Batches counted as a worker counts them (batch_tracker.py), from the same states and
    events: callbacks enqueued once, the parent told. No lock, no stored state: one process."""

    def __init__(self, app: AppView) -> None:
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
            batches.tell_parent(self.app, state)


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


class InMemorySteps:
    """Durable jobs' completed steps in memory, as the steps topic keeps them: by
    `<job id>/<step name>`, the latest value of each; stored as soon as written."""

    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}
        self._lock = threading.Lock()  # sync jobs store from runner threads

    def read(self, job_id: str) -> dict[str, bytes]:
        prefix = step_key(job_id, "")
        with self._lock:
            return {key[len(prefix) :]: data for key, data in self.stored.items()
                    if key.startswith(prefix)}  # fmt: skip

    def write(self, job_id: str, name: str, data: bytes) -> Future[None]:
        with self._lock:
            self.stored[step_key(job_id, name)] = data
        stored: Future[None] = Future()
        stored.set_result(None)
        return stored

    def value(self, job_id: str, name: str) -> Any:
        """A step's stored value (KeyError if it is not stored)."""
        return decode_step(self.stored[step_key(job_id, name)])


class InMemorySignals(SignalBoard):
    """Kept signals and waiting jobs in memory: stored as soon as written, one lock for all
    waits (a copy a signal sends goes through the App, to the in-memory broker)."""

    def __init__(self, app: SignalingApp) -> None:
        super().__init__(app)
        self._waits_lock = threading.RLock()

    @contextlib.contextmanager
    def locked(self, job_id: str, name: str) -> Iterator[None]:
        with self._waits_lock:
            yield

    def _write(self, key: str, data: bytes) -> None:
        with self._reading:
            self._apply(key, data)

    def _catch_up(self) -> None:
        """Memory has it all."""


class MemoryLimits:
    """Concurrency limits in memory (the pipeline's Limits): a job over its key's limit waits
    for a slot, as on the broker."""

    def __init__(self, app: AppView) -> None:
        self.app = app
        self._held: Counter[str] = Counter()
        self._freed = threading.Condition()

    def take(self, envelope: Envelope) -> str | None:
        job, key = self.app.jobs.get(envelope.type), envelope.limit_key
        limit = None if job is None else job.flow.concurrency_limit
        if key is None or limit is None:
            return None
        with self._freed:
            self._freed.wait_for(lambda: self._held[key] < limit)
            self._held[key] += 1
        return key

    async def take_async(self, envelope: Envelope) -> str | None:
        return await asyncio.to_thread(self.take, envelope)

    def give(self, envelope: Envelope, slot: str) -> None:
        with self._freed:
            self._held[slot] -= 1
            self._freed.notify_all()


class MemoryCrashes:
    """The crash ledger in memory (crashes.py): how often each job was running when its
    process died, and when it last did, on the virtual clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.counts: dict[str, Crashes] = {}
        self.doomed: Counter[str] = Counter()  # job ids and types whose next runs die
        self.dying: set[str] = set()  # job ids whose process dies before they are acked
        self._lock = threading.Lock()

    def of(self, job_id: str) -> Crashes | None:
        return self.counts.get(job_id)

    def runs(self, envelope: Envelope) -> None:
        """A run starts: its process is to die once it is over, if its id or type is doomed."""
        with self._lock:
            for doomed in (envelope.id, envelope.type):  # as crash_process_in named it
                if self.doomed[doomed] > 0:
                    self.doomed[doomed] -= 1
                    self.dying.add(envelope.id)
                    return

    def dies_at(self, message: MemoryMessage) -> bool:
        """Whether the process dies as this message is to be acknowledged (dies)."""
        if not self.dying:
            return False
        try:
            return self.dies(decode(message.data(), None).id)
        except EnvelopeError:
            return False

    def dies(self, job_id: str) -> bool:
        """Whether the process dies as this job is to be acknowledged (it is then counted
        as running when it did)."""
        with self._lock:
            if job_id not in self.dying:
                return False
            self.dying.discard(job_id)
            count, _ = self.counts.get(job_id, (0, 0.0))
            self.counts[job_id] = (count + 1, self.clock().timestamp())
        return True


class VirtualWaits:
    """A job held in place for its order waits by moving the virtual clock to its time."""

    def __init__(self, move_to: Callable[[datetime], None]) -> None:
        self.move_to = move_to

    async def until_async(self, at: datetime) -> None:
        self.move_to(at)

    def until(self, at: datetime) -> bool:
        self.move_to(at)
        return True


class Recorder(Step):
    """Each verdict, as the TestRunner lists them: in order, and by the counter it moves."""

    name = "test recorder"

    def __init__(self, outcomes: list[Outcome], by_counter: dict[str, list[Envelope]]) -> None:
        self.outcomes = outcomes
        self.by_counter = by_counter
        self._lock = threading.Lock()  # runner threads settle at once

    def told(self, queue: str, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)
            listed = self.by_counter.get(outcome.kind.policy.counter)
            if listed is not None:
                listed.append(outcome.envelope)


class RunCounter(Middleware):
    """Counts runs that reach the handler, by job id and by job type (and tells the crash
    ledger, whose doomed runs die once over)."""

    def __init__(self, crashes: MemoryCrashes) -> None:
        self.runs: Counter[str] = Counter()
        self.crashes = crashes
        self._lock = threading.Lock()

    def before_process(self, envelope: Envelope) -> None:
        with self._lock:
            self.runs[envelope.id] += 1
            self.runs[envelope.type] += 1
        self.crashes.runs(envelope)

    def count(self, key: Any) -> int:
        return self.runs[key]


def cancel_pending(
    app: App,
    connection: InMemoryConnection,
    pending: Sequence[Envelope],
    keys: Mapping[str, object],
    queue: str | None,
    now: datetime,
    groups: Sequence[PendingGroup] = (),
) -> int:
    """`app.cancel_matching` on the TestRunner's pending jobs: those that match, and that no
    cancel made after them covers already, are cancelled; and grouped jobs' members waiting in
    `groups` that match (`group=` their group key) leave their group; how many."""
    marks = connection.marks.get(cancelled_topic(app.settings), {})
    cancelled = {job_id: Cancel.decode(mark).cancelled_at for job_id, mark in marks.items()}
    count = 0
    for job in pending:
        at = cancelled.get(job.id)
        if (queue in (None, job.queue) and matches(job, keys)
                and (at is None or job.created_at > at)):  # fmt: skip
            app.cancel(job.id)
            cancelled[job.id], count = now, count + 1
            if job.debounce_key is not None:
                app.debounces.settled(job)
    for group in groups:
        if queue not in (None, group.queue):
            continue
        of_type = {"type": group.type, "group": group.key}
        kept = [m for m in group.members
                if not all(of_type.get(name) == value for name, value in keys.items())]  # fmt: skip
        count += len(group.members) - len(kept)
        group.members[:] = kept
    return count
