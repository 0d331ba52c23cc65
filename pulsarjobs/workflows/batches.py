"""Batches: jobs enqueued together, with callbacks enqueued once when all of them have settled.

A batch is told what happens to it by events on the namespace's topic `pulsarjobs-batch-events`,
keyed by the batch's id: `opened` (its description, parent and callbacks), `closed` (its jobs,
once the `with` block that enqueued them has ended), `added` (jobs a running job added to it),
and `settled` (a job of it succeeded, or ended without succeeding: dead, expired or cancelled).
A chain in a batch is one job of it, under the chain's id: its links carry the batch, and only
the link that ends the chain (the last one succeeding, or any one failing for good) tells it.
A worker publishes a job's `settled` event before it acknowledges the job, so no settled job
goes untold. Workers count the events (batch_tracker.py); the design and why each callback is
enqueued exactly once are in docs/workflows.md.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, TypedDict, Unpack

from pulsarjobs.app_view import AppView
from pulsarjobs.clock import utc_now
from pulsarjobs.jobs import Job, JobCall
from pulsarjobs.transport.topics import BATCH_SUBSCRIPTION, batch_events_topic
from pulsarjobs.wire.envelope import Envelope, new_id
from pulsarjobs.wire.verdicts import Outcome
from pulsarjobs.workflows.batch_state import OWNER_SEPARATOR, BatchState, callback_text
from pulsarjobs.workflows.chains import Chained

MAX_JOBS = 10_000  # a batch's state is one message: nest batches for more (a child counts as 1)
CALLBACK_META = "pulsarjobs-batch"  # a callback's meta: the id of the batch that enqueued it


class BatchingApp(AppView, Protocol):
    """What a batch uses of the App beyond what the worker does."""

    def enqueue_many(
        self, calls: Sequence[JobCall], *, in_: timedelta | None = None, at: datetime | None = None
    ) -> list[str]: ...

    async def enqueue_many_async(
        self, calls: Sequence[JobCall], *, in_: timedelta | None = None, at: datetime | None = None
    ) -> list[str]: ...

    def chain(
        self, *calls: JobCall, pass_result: bool = False, keep_result: timedelta | None = None
    ) -> Chained: ...

    async def chain_async(
        self, *calls: JobCall, pass_result: bool = False, keep_result: timedelta | None = None
    ) -> Chained: ...


class BatchOptions(TypedDict, total=False):
    on_success: JobCall | None  # enqueued once, when every job of the batch succeeded
    on_complete: JobCall | None  # enqueued once, when every job has settled, however
    description: str
    parent: Batch | None  # this batch counts as one job of the parent
    id: str | None  # None: a fresh id


def event(kind: str, batch_id: str, **fields: Any) -> bytes:
    return json.dumps({"kind": kind, "batch": batch_id, **fields}, separators=(",", ":")).encode()


def told(app: AppView, outcome: Outcome) -> Future[None] | None:
    """Tell the job's batch that it settled (a final outcome): stored before the job is
    acknowledged, beside what replaces it. None when its batch is not to hear of it yet."""
    envelope, chain, policy = outcome.envelope, outcome.envelope.chain, outcome.kind.policy
    if not policy.over or envelope.batch_id is None:
        return None
    if chain is not None and policy.succeeded and chain.next:
        return None  # a link the chain goes on from: the chain settles with the one ending it
    counted = envelope.id if chain is None else chain.id  # a chain counts as one job: its id
    return publish(app, envelope.batch_id, event("settled", envelope.batch_id, job=counted,
                                                 ok=policy.succeeded))  # fmt: skip


def tell_parent(app: AppView, state: BatchState) -> Future[None] | None:
    """A complete batch is one job of its parent batch, if it has one: tell the parent."""
    if state.parent is None:
        return None
    told = event("settled", state.parent, job=state.id, ok=state.all_succeeded)
    return publish(app, state.parent, told)


def publish(app: AppView, batch_id: str, data: bytes) -> Future[None]:
    topic = batch_events_topic(app.settings)
    app.connection.prepare_queue(topic, BATCH_SUBSCRIPTION, key_shared=True)
    return app.connection.publish(topic, data, key=batch_id)


def both(first: Future[None], second: Future[None]) -> Future[None]:
    """Completes once both have, or fails with the first failure."""
    result: Future[None] = Future()

    def done(_: Future[None]) -> None:
        with contextlib.suppress(InvalidStateError):  # both completed at once, on two threads
            for future in (first, second):
                if future.done() and future.exception() is not None:
                    result.set_exception(future.exception())
                    return
            if first.done() and second.done():
                result.set_result(None)

    first.add_done_callback(done)
    second.add_done_callback(done)
    return result


class Batch:
    """A batch being filled: `with app.batch(...) as batch: batch.enqueue(...)` (or `async
    with`), or the batch of the running job (`app.current_batch()`), which is filled already:
    jobs added to it count before the adding job settles."""

    def __init__(self, app: BatchingApp, **options: Unpack[BatchOptions]) -> None:
        self.app = app
        self.id: str = options.get("id") or new_id()
        if OWNER_SEPARATOR in self.id:
            raise ValueError(f"a batch id cannot hold {OWNER_SEPARATOR!r}: {self.id!r}")
        self.description: str = options.get("description", "")
        self.parent: Batch | None = options.get("parent")
        self.on_success: JobCall | None = options.get("on_success")
        self.on_complete: JobCall | None = options.get("on_complete")
        self.jobs: list[str] = []  # ids enqueued through this handle
        self.running = False  # the batch of a running job: its jobs are told as they come
        self.closed = False

    @classmethod
    def of_running_job(cls, app: BatchingApp, envelope: Envelope) -> Batch:
        """The batch of the running job whose envelope this is."""
        if envelope.batch_id is None:
            raise RuntimeError(f"job {envelope.id} ({envelope.type}) belongs to no batch")
        batch = cls(app, id=envelope.batch_id)
        batch.running = True
        return batch

    # -- opening and closing -----------------------------------------------------------------

    def __enter__(self) -> Batch:
        self.open().result()
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:  # a block that raised leaves the batch open: its callbacks never run
            self.close().result()

    async def __aenter__(self) -> Batch:
        await self._stored_async(self.open)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, _: BaseException | None, __: TracebackType | None
    ) -> None:
        if kind is None:
            await self._stored_async(self.close)

    async def _stored_async(self, send: Callable[[], Future[None]]) -> None:
        """Await what `send` tells the batch's topic, from a thread while that would block."""
        await self.app.stored_async(send, [batch_events_topic(self.app.settings)])

    def callbacks(self) -> dict[str, Envelope]:
        """The callbacks as they will be enqueued, each with an id of its own, so that
        enqueueing one twice is recognised."""
        envelopes = {}
        for name in ("on_success", "on_complete"):
            call: JobCall | None = getattr(self, name)
            if call is not None:
                meta = {**call.meta, CALLBACK_META: self.id}
                call = call.with_options(job_id=call.job_id or f"{self.id}.{name}", meta=meta)
                envelopes[name] = self.app.envelope(call)
        return envelopes

    def open(self) -> Future[None]:
        """Record the batch (before any of its jobs): its description, parent and callbacks."""
        self.app.check_reachable([batch_events_topic(self.app.settings)])
        callbacks = {name: callback_text(env) for name, env in self.callbacks().items()}
        parent = self.parent.id if self.parent else None
        return publish(self.app, self.id, event("opened", self.id, description=self.description,
                                                parent=parent, callbacks=callbacks,
                                                created_at=utc_now().isoformat()))  # fmt: skip

    def close(self) -> Future[None]:
        """Its jobs are all enqueued: it completes once they have settled. A child batch
        becomes one job of its parent."""
        self.closed = True
        closed = publish(self.app, self.id, event("closed", self.id, members=self.jobs))
        if self.parent is None:
            return closed
        return both(closed, self.parent.adopt([self.id]))

    def adopt(self, ids: Sequence[str]) -> Future[None]:
        """Count `ids` (enqueued already) as jobs of this batch."""
        self._check_room(len(ids))
        self.jobs.extend(ids)
        if not self.running:  # told when the block ends
            done: Future[None] = Future()
            done.set_result(None)
            return done
        return publish(self.app, self.id, event("added", self.id, members=list(ids)))

    def batch(self, **options: Unpack[BatchOptions]) -> Batch:
        """A child batch, counted as one job of this one: `with batch.batch(...) as child:`."""
        options["parent"] = self
        return Batch(self.app, **options)

    # -- enqueueing --------------------------------------------------------------------------

    def enqueue(
        self,
        job: Job[Any, Any] | JobCall,
        *args: Any,
        in_: timedelta | None = None,
        at: datetime | None = None,
        **kwargs: Any,
    ) -> str:
        """Enqueue a job of the batch: `batch.enqueue(send, "ada@example.com")` or
        `batch.enqueue(send.call("ada@example.com"), in_=timedelta(minutes=5))`."""
        return self.enqueue_many([job.call(*args, **kwargs) if isinstance(job, Job) else job],
                                 in_=in_, at=at)[0]  # fmt: skip

    def enqueue_many(
        self, calls: Sequence[JobCall], *, in_: timedelta | None = None, at: datetime | None = None
    ) -> list[str]:
        mine = self._calls(calls)
        ids = self.app.enqueue_many(mine, in_=in_, at=at)
        self._adopt_enqueued(mine, ids).result()
        return ids

    async def enqueue_async(
        self,
        job: Job[Any, Any] | JobCall,
        *args: Any,
        in_: timedelta | None = None,
        at: datetime | None = None,
        **kwargs: Any,
    ) -> str:
        call = job.call(*args, **kwargs) if isinstance(job, Job) else job
        return (await self.enqueue_many_async([call], in_=in_, at=at))[0]

    async def enqueue_many_async(
        self, calls: Sequence[JobCall], *, in_: timedelta | None = None, at: datetime | None = None
    ) -> list[str]:
        mine = self._calls(calls)
        ids = await self.app.enqueue_many_async(mine, in_=in_, at=at)
        await self._stored_async(lambda: self._adopt_enqueued(mine, ids))
        return ids

    def chain(
        self, *calls: JobCall, pass_result: bool = False, keep_result: timedelta | None = None
    ) -> Chained:
        """A chain as one job of the batch (`app.chain`'s arguments): counted under the
        chain's id, it settles when its last link succeeds, or when a link fails for good."""
        self._check_room(1)
        chained = self.app.chain(*self._links(calls), pass_result=pass_result,
                                 keep_result=keep_result)  # fmt: skip
        self.adopt([chained.id]).result()
        return chained

    async def chain_async(
        self, *calls: JobCall, pass_result: bool = False, keep_result: timedelta | None = None
    ) -> Chained:
        self._check_room(1)
        chained = await self.app.chain_async(*self._links(calls), pass_result=pass_result,
                                             keep_result=keep_result)  # fmt: skip
        await self._stored_async(lambda: self.adopt([chained.id]))
        return chained

    def _links(self, calls: Sequence[JobCall]) -> list[JobCall]:
        """Every link carries the batch: the one that ends the chain tells it, and a link's
        `app.current_batch()` is this batch."""
        return [call.with_options(batch_id=self.id) for call in calls]

    def _check_room(self, more: int) -> None:
        if self.closed:
            raise RuntimeError(f"batch {self.id} is closed: enqueue within its `with` block")
        if len(self.jobs) + more > MAX_JOBS:
            raise ValueError(f"a batch holds at most {MAX_JOBS} jobs: nest batches for more")

    def _calls(self, calls: Sequence[JobCall]) -> list[JobCall]:
        self._check_room(len(calls))
        return [call.with_options(job_id=call.job_id or new_id(), batch_id=self.id)
                for call in calls]  # fmt: skip

    def _adopt_enqueued(self, calls: list[JobCall], ids: list[str]) -> Future[None]:
        """Count the jobs made: a unique job whose key was held made none (its id is the
        holder's, a job outside the batch). Told after they are enqueued: a job that is told
        but was never made would keep the batch from completing."""
        return self.adopt([job_id for call, job_id in zip(calls, ids, strict=True)
                           if job_id == call.job_id])  # fmt: skip
