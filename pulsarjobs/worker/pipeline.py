"""One delivery of a job, from the message its feed gave to its acknowledgement: the one place
that says what happens to a job, and in which order.

    1. skip     a second delivery of a message settled here is acknowledged again, not run
    2. decode   with its writer's schema; a message that is no job is undecodable
    3. judge    before it runs: cancelled, expired, early; the steps' own verdicts (a crash
                ledger); no such job, arguments that do not fit
    4. slot     a rate limit's start token, a concurrency limit's slot (flow/limits.py)
    5. run      the job, with its hooks, timeout and cancel (execution.py)
    6. hold     on an ordered queue, a verdict that holds its order runs again in place,
                once due: the key's later jobs wait behind it (_ordering.py)
    7. store    what replaces the message (settle.py), and the steps' follow-ups beside it —
                a kept result, a chain's next link, a batch event — all stored by the broker
    8. ack      only then; an ordered key's next job may run
    9. tell     each step hears the verdict: counters, metrics, a unique key given back

Stages 1-2 (`take_in`) come first so that the runners can choose where the job runs — a loop
task, or a runner thread for a plain `def` job — and stages 3-9 (`carry_async`, `carry`) run
there. The features are steps (steps.py), called only at the stages they take part in; what each
does with a verdict is the verdict table's to say (wire/verdicts.py). A delivery that fails
between the stages — the broker could not store its replacement — is handed back, unacked,
to be delivered again: nothing is lost. The worker and the in-memory TestRunner (testing.py)
both carry every delivery through here.

A durable job parked by its run (5, `ctx.sleep`: the Judge gives the verdict) holds its order
(6) and is stored due at its wake-up (7). A delivery grouped into another stored job (a
debounced call a later one superseded) is judged so before it runs (3) and acknowledged.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import pulsar
import structlog

from pulsarjobs.clock import Clock
from pulsarjobs.logs import error_text
from pulsarjobs.transport.schema_registry import NOT_LOOKED_UP, WriterSchemas
from pulsarjobs.wire.envelope import Envelope, EnvelopeError, decode
from pulsarjobs.wire.verdicts import Outcome
from pulsarjobs.worker._queue_feed import QueueFeed
from pulsarjobs.worker._stats import WorkerStats
from pulsarjobs.worker.execution import JobExecutor
from pulsarjobs.worker.judge import Judge, Work
from pulsarjobs.worker.settle import Received, Settler, all_stored
from pulsarjobs.worker.steps import Named, Stage, judges

if TYPE_CHECKING:
    from pulsarjobs.app_view import AppView

log = structlog.get_logger("pulsarjobs.runners")

# Messages remembered as settled: the broker may deliver one twice (at least once: an ack
# still on its way when a connection drops), and a message already settled needs no second run.
RECENTLY_SETTLED = 10_000

HELD_LOOK_S = 0.5  # a runner thread holding a job in place looks this often whether to stop


class SchemaNotCached(Exception):
    """Taking this message in would block: its writer's schema must be looked up first."""


@dataclass(slots=True)
class Taken:
    """A delivery taken in: `job` is its envelope, or the verdict on a message that is no job.
    It is what settling reads of the message, too (settle.Received)."""

    queue: QueueFeed
    message: pulsar.Message
    topic: str
    seen_as: bytes  # its message id, serialized: what the duplicate check knows it by
    data: bytes
    job: Envelope | Outcome | None = None

    @property
    def message_id(self) -> str:
        """Its message id as text, for a dead letter and the logs only: the client makes the
        text at 2.5 times the bytes' cost (8,500 against 3,400 instructions)."""
        return str(self.message.message_id())


class Limits(Protocol):
    """Where a limited job takes its slot (flow/limits.py; in memory under the TestRunner)."""

    def take(self, envelope: Envelope) -> Any: ...
    async def take_async(self, envelope: Envelope) -> Any: ...
    def give(self, envelope: Envelope, slot: Any) -> None: ...


class Waits(Protocol):
    """How a job held in place waits for its time: on the wall clock in a worker, by moving
    the virtual clock under the TestRunner."""

    async def until_async(self, at: datetime) -> None: ...
    def until(self, at: datetime) -> bool: ...  # False: the worker stops meanwhile


class WallClockWaits:
    def __init__(self, clock: Clock, still_open: Callable[[], bool]) -> None:
        self.clock = clock
        self.still_open = still_open

    async def until_async(self, at: datetime) -> None:
        await asyncio.sleep(self._left(at))

    def until(self, at: datetime) -> bool:
        ends = time.monotonic() + self._left(at)
        while self.still_open() and (left := ends - time.monotonic()) > 0:
            time.sleep(min(left, HELD_LOOK_S))
        return self.still_open()

    def _left(self, at: datetime) -> float:
        """Woken a little early by a coarser clock, a job is early, and waits out the rest."""
        return max(0.0, (at - self.clock()).total_seconds())


class Pipeline:
    def __init__(
        self,
        app: AppView,
        judge: Judge,
        executor: JobExecutor,
        settler: Settler,
        schemas: WriterSchemas,
        stats: WorkerStats,
        steps: Sequence[Named],
        waits: Waits,
        limits: Limits | None = None,
    ) -> None:
        self.app = app
        self.judge = judge
        self.executor = executor
        self.settler = settler
        self.schemas = schemas
        self.stats = stats  # a second delivery is counted here; verdicts by a step
        self.waits = waits
        self.limits = limits
        starting = Stage(steps, "started")
        # Before the run, a step is asked about every job, or about the jobs it concerns.
        self._judging: tuple[Callable[[Envelope], Outcome | None], ...] = judges(steps)
        self._starting: tuple[Callable[[Envelope], None], ...]
        self._starting = starting.every + starting.concerned
        self._following_up = Stage(steps, "follow_ups")
        self._telling = Stage(steps, "told")
        self._settled: OrderedDict[bytes, None] = OrderedDict()  # message ids, the latest last
        self._late_runs_abandoned = False

    # -- 1, 2: taking a delivery in ----------------------------------------------------------

    def take_in(
        self, queue: QueueFeed, message: pulsar.Message, may_block: bool = True
    ) -> Taken | None:
        """The delivery, decoded; None for a second delivery (acknowledged here), or when its
        writer's schema cannot be read now (handed back). That schema is looked up once per
        topic and version, which blocks: with `may_block` False, SchemaNotCached is raised
        instead, and the message is left as it came."""
        seen_as = message.message_id().serialize()
        taken = Taken(queue, message, message.topic_name(), seen_as, message.data())
        if seen_as in self._settled:  # this very message: a job enqueued again runs
            self.stats.count_duplicate()
            log.info("second delivery of a settled message skipped", message_id=taken.message_id)
            self._acknowledge(queue, message)
            return None
        schema, key = None, WriterSchemas.key(taken.topic, message.schema_version())
        if (
            key is not None
            and (schema := self.schemas.known.get(key, NOT_LOOKED_UP)) is NOT_LOOKED_UP
        ):
            if not may_block:
                raise SchemaNotCached(key)
            try:
                schema = self.schemas.fetch(key)
            except Exception as exc:
                log.warning("could not read the writer's schema; the job goes back",
                            queue=queue.queue, error=error_text(exc))  # fmt: skip
                queue.give_back(message)
                return None
        try:
            taken.job = decode(taken.data, schema)
        except EnvelopeError as exc:
            taken.job = self.judge.undecodable(taken.message_id, exc)
        return taken

    def runs_on_threads(self, taken: Taken) -> bool:
        """Whether the job is a plain `def` one (it runs on a runner thread)."""
        job = taken.job
        declared = self.app.jobs.get(job.type) if isinstance(job, Envelope) else None
        return declared is not None and not declared.is_async

    # -- 3 to 9, on the event loop ------------------------------------------------------------

    async def carry_async(self, taken: Taken, task: asyncio.Task[Any] | None) -> None:
        """Judge, run, store, acknowledge and tell, on the loop (a sync job on the thread
        pool). Cancelled (the grace period ran out), the delivery is handed back."""
        queue, job = taken.queue, taken.job
        assert job is not None
        try:
            outcome = job if isinstance(job, Outcome) else await self._run_async(job, task)
            while queue.ordered and outcome.kind.policy.holds_its_order:  # 6
                self._tell(queue.queue, outcome)
                assert outcome.envelope.run_at is not None
                await self.waits.until_async(outcome.envelope.run_at)
                outcome = await self._run_async(outcome.envelope, task)
            stored = self.store(queue.queue, taken, outcome)
            if stored is not None:
                await asyncio.wrap_future(stored)
            self._acknowledge(queue, taken.message, taken.seen_as)
            telling = self._telling  # 9, as _tell does it, without a call of its own per job
            for told in telling.every:
                told(queue.queue, outcome)
            if telling.concerned and telling.asked(outcome.envelope) != telling.unset:
                self._tell_concerned(queue.queue, outcome)
        except asyncio.CancelledError:
            queue.give_back(taken.message)
            raise
        except Exception:
            log.exception("could not settle a job; it will be delivered again", queue=queue.queue)
            queue.give_back(taken.message)

    def _run_async(self, envelope: Envelope, task: asyncio.Task[Any] | None) -> Awaitable[Outcome]:
        """Stages 3 to 5; what it returns is awaited by the caller — the run itself, for most
        jobs: no coroutine of its own around it."""
        work = self.judge.before(envelope, self._judging)  # 3
        if isinstance(work, Outcome):
            return _ready(work)
        if envelope.limit_key is not None and self.limits is not None:  # 4
            return self._run_in_slot_async(envelope, work, task)
        for started in self._starting:
            started(envelope)
        return self.executor.run(work, envelope, task)  # 5

    async def _run_in_slot_async(
        self, envelope: Envelope, work: Work, task: asyncio.Task[Any] | None
    ) -> Outcome:
        assert self.limits is not None
        slot = await self.limits.take_async(envelope)  # waits its turn, unacknowledged
        if slot is not None and (called_off := self._waited(envelope, slot)) is not None:
            if not isinstance(work, functools.partial):
                work.close()
            return called_off
        try:
            for started in self._starting:
                started(envelope)
            return await self.executor.run(work, envelope, task)
        finally:
            if slot is not None:
                self._give_slot(envelope, slot)

    # -- 3 to 9, on this thread (a runner thread) ---------------------------------------------

    def carry(self, taken: Taken) -> None:
        """`carry_async` for a sync job on a runner thread. A run that ends once the runner
        threads' late jobs were handed back (`abandon_late_runs`) is stored, not acked."""
        queue, job = taken.queue, taken.job
        assert job is not None
        try:
            outcome = job if isinstance(job, Outcome) else self._run(job)
            while queue.ordered and outcome.kind.policy.holds_its_order:  # 6
                self._tell(queue.queue, outcome)
                assert outcome.envelope.run_at is not None
                if not self.waits.until(outcome.envelope.run_at):
                    raise RuntimeError("stopping: an ordered job's retry goes back")
                outcome = self._run(outcome.envelope)
            stored = self.store(queue.queue, taken, outcome)
            if stored is not None:
                stored.result()
            if not self._late_runs_abandoned:
                self._acknowledge(queue, taken.message, taken.seen_as)
                telling = self._telling  # 9, as in carry_async
                for told in telling.every:
                    told(queue.queue, outcome)
                if telling.concerned and telling.asked(outcome.envelope) != telling.unset:
                    self._tell_concerned(queue.queue, outcome)
        except Exception:
            log.exception("could not settle a job; it will be delivered again", queue=queue.queue)
            queue.give_back(taken.message)

    def _run(self, envelope: Envelope) -> Outcome:
        work = self.judge.before(envelope, self._judging)  # 3
        if not isinstance(work, functools.partial):  # a sync job's work is a call
            assert isinstance(work, Outcome)
            return work
        slot = None
        if envelope.limit_key is not None and self.limits is not None:  # 4
            slot = self.limits.take(envelope)  # waits its turn, unacknowledged
            if slot is not None and (called_off := self._waited(envelope, slot)) is not None:
                return called_off
        try:
            for started in self._starting:
                started(envelope)
            return self.executor.run_here(work, envelope)  # 5
        finally:
            if slot is not None:
                self._give_slot(envelope, slot)

    def abandon_late_runs(self) -> None:
        """The grace period ran out and the jobs still running were handed back: a sync run
        (a thread cannot be stopped) that ends later must not be acknowledged."""
        self._late_runs_abandoned = True

    # -- the stages both share ----------------------------------------------------------------

    def _waited(self, envelope: Envelope, slot: Any) -> Outcome | None:
        """Once a slot came: the job's verdict if it was cancelled or expired meanwhile (its
        slot then goes back at once)."""
        called_off = self.judge.called_off(envelope, self.judge.clock())
        if called_off is not None:
            self._give_slot(envelope, slot)
        return called_off

    def _give_slot(self, envelope: Envelope, slot: Any) -> None:
        assert self.limits is not None
        try:
            self.limits.give(envelope, slot)
        except Exception as exc:  # a closed consumer gave it back already
            log.warning(
                "could not give back a slot", limit_key=envelope.limit_key, error=error_text(exc)
            )

    def store(self, queue: str, delivery: Received, outcome: Outcome) -> Future[None] | None:  # 7
        """What replaces the message and what follows from it; the future completes once the
        broker has it all. None when nothing needs storing."""
        replaced = self.settler.store(queue, delivery, outcome)
        stage = self._following_up
        follow_ups = stage.every
        if stage.concerned and stage.asked(outcome.envelope) != stage.unset:
            follow_ups += stage.concerned
        if not follow_ups:
            return replaced
        stored = [] if replaced is None else [replaced]
        for follow_up in follow_ups:
            stored += follow_up(outcome)
        return None if not stored else stored[0] if len(stored) == 1 else all_stored(stored)

    def _acknowledge(
        self, queue: QueueFeed, message: pulsar.Message, seen_as: bytes | None = None
    ) -> None:  # 8
        queue.consumer.acknowledge(message)
        if seen_as is not None:  # remembered once acked: the broker may deliver it again
            # From any runner thread without a lock: each step is one call into C, whole under
            # the GIL; two runners past the limit at once forget one more.
            settled = self._settled
            settled[seen_as] = None
            if len(settled) > RECENTLY_SETTLED:
                settled.popitem(last=False)
        if queue.ordered:
            queue.done(message)  # the key's next job may run

    def _tell(self, queue: str, outcome: Outcome) -> None:  # 9
        """Each step hears the verdict; one held in place as if it went to the retry topic."""
        stage = self._telling
        for told in stage.every:
            told(queue, outcome)
        if stage.concerned and stage.asked(outcome.envelope) != stage.unset:
            self._tell_concerned(queue, outcome)

    def _tell_concerned(self, queue: str, outcome: Outcome) -> None:
        for told in self._telling.concerned:
            told(queue, outcome)


async def _ready(outcome: Outcome) -> Outcome:
    """A verdict given before the run, as an awaitable (rare: most jobs run)."""
    return outcome
