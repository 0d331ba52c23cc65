"""The App: settings, the jobs it knows and their schedules, and enqueueing them.

Declaring a job binds nothing to a broker; the connection opens on the first enqueue or when a
worker starts. Sync and asyncio enqueue share one path: publish every message asynchronously,
then wait for the broker's acks, blocking or awaiting. The asyncio entry points never block
their loop: what waits for the broker (a queue's first job subscribes and makes its producer)
runs on a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any, Literal, ParamSpec, TypeVar, Unpack, overload

from pulsarjobs import tracing
from pulsarjobs.clock import Clock, utc_now, when_due
from pulsarjobs.errors import BrokerUnavailable, ConfigurationError, EnqueueError
from pulsarjobs.flow import rates
from pulsarjobs.flow.fairness import fair_of, lane_of, weight_properties
from pulsarjobs.flow.unique import DuplicateJob, UniqueKeys, default_key, hold_for
from pulsarjobs.jobs import (
    DEFAULT_QUEUE,
    DurableDecorator,
    FlowOptions,
    Job,
    JobCall,
    JobDecorator,
    JobOptions,
    check_options,
)
from pulsarjobs.logs import LoggingMiddleware
from pulsarjobs.middleware import Hooks, Middleware
from pulsarjobs.operations import cancels, pauses, retention
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.scheduling.cron import (
    Schedule,
)
from pulsarjobs.scheduling.periodic import PeriodicJobs
from pulsarjobs.settings import Settings
from pulsarjobs.transport import access
from pulsarjobs.transport.closing import Closing
from pulsarjobs.transport.connection import Acks, Connection
from pulsarjobs.transport.topics import check_queue_name, topics_for
from pulsarjobs.wire.envelope import ArgumentError, Envelope, encode, new_id
from pulsarjobs.worker.execution import current_job
from pulsarjobs.workflows.app_methods import Workflows
from pulsarjobs.workflows.batches import Batch, BatchOptions
from pulsarjobs.workflows.durable import durable_run

P = ParamSpec("P")
R = TypeVar("R")


class App(PeriodicJobs, Workflows, Closing):
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        middleware: Iterable[Middleware] = (),
        **setting_overrides: Any,
    ) -> None:
        self.settings = settings or Settings.from_env(**setting_overrides)
        self.jobs: dict[str, Job[Any, Any]] = {}
        self.schedules: dict[str, Schedule] = {}
        self.hooks = Hooks([LoggingMiddleware(), *tracing.middleware(), *middleware])
        self._connection: Connection | None = None
        self._unique_keys: UniqueKeys | None = None
        self.clock: Clock = utc_now  # when jobs are created and due; TestRunner's is virtual

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = Connection(self.settings)
        return self._connection

    @connection.setter
    def connection(self, connection: Connection) -> None:
        self._connection = connection

    def declared_queues(self) -> tuple[str, ...]:
        """The queues its jobs and schedules name (`default` when they name none): what a
        worker serves unless told which."""
        queues = {job.queue for job in self.jobs.values()}
        queues |= {schedule.queue for schedule in self.schedules.values() if schedule.queue}
        return tuple(sorted(queues)) or (DEFAULT_QUEUE,)

    def fair_queues(self) -> set[str]:
        """The queues whose jobs it declares fair-keyed: their workers serve their lanes."""
        return {job.queue for job in self.jobs.values() if job.fair is not None}

    @property
    def unique_keys(self) -> UniqueKeys:
        """The held unique keys (unique.py), read once a unique job is enqueued or settled."""
        if self._unique_keys is None:
            self._unique_keys = UniqueKeys(self.connection, self.clock)
        return self._unique_keys

    @unique_keys.setter
    def unique_keys(self, unique_keys: UniqueKeys | None) -> None:
        self._unique_keys = unique_keys

    @overload
    def job(self, func: Callable[P, R]) -> Job[P, R]: ...

    @overload
    def job(
        self, *, durable: Literal[False] = False, **options: Unpack[JobOptions]
    ) -> JobDecorator: ...

    @overload
    def job(self, *, durable: Literal[True], **options: Unpack[JobOptions]) -> DurableDecorator: ...

    def job(
        self,
        func: Callable[..., Any] | None = None,
        *,
        durable: bool = False,
        **options: Unpack[JobOptions],
    ) -> Any:
        """Declare a job: `@app.job` or `@app.job(queue="critical", max_attempts=5, timeout=30)`.
        The options are JobOptions' (jobs.py); `durable` (its first parameter a `Durable`
        context, which the worker passes): docs/workflows.md."""
        check_options(options)

        def declare(function: Callable[..., Any]) -> Job[Any, Any]:
            declared = Job.declared(self, function, options, durable)
            if declared.name in self.jobs:
                raise ConfigurationError(f"a job named {declared.name!r} is declared twice")
            if durable:
                declared.func = durable_run(self, declared, current_job)
            self.jobs[declared.name] = declared
            return declared

        return declare(func) if func is not None else declare

    def envelope(
        self, call: JobCall, *, in_: timedelta | None = None, at: datetime | None = None
    ) -> Envelope:
        """The envelope a call is sent as; a job declared elsewhere goes to `default` unless
        the call names a queue."""
        declared = self.jobs.get(call.type)
        if declared is not None:  # fail here, at the caller, rather than in a worker later
            try:
                declared.check_arguments(call.args, call.kwargs)
            except TypeError as exc:
                raise ArgumentError(f"its args and kwargs do not fit {call.type}"
                                    f"{declared.signature}: {exc}") from None  # fmt: skip
        flow = declared.flow if declared else FlowOptions()
        now = self.clock()
        run_at = when_due(now, in_, at)
        if call.order_key is not None and run_at is not None:
            raise ValueError("an ordered job runs in enqueue order: it cannot be scheduled")
        queue = check_queue_name(call.queue or (declared.queue if declared else DEFAULT_QUEUE))
        fair_key, fair_weight = None, 1
        if call.fair_key is not None or (declared is not None and declared.fair is not None):
            fair_key, fair_weight = fair_of(
                call.fair_key, call.fair_weight, declared.fair if declared else None,
                call.args, call.kwargs, queue, self.fair_queues,
            )  # fmt: skip
            if call.order_key is not None:
                raise ValueError("a job is either ordered or fair-keyed, not both")
        return Envelope(
            id=call.job_id or new_id(),
            type=call.type,
            queue=queue,
            args=call.args,
            kwargs=call.kwargs,
            created_at=now,
            run_at=run_at,
            retry=call.retry or (declared.retry if declared else RetryPolicy()),
            timeout=call.timeout
            if call.timeout is not None
            else getattr(declared, "timeout", None),
            expires_at=(run_at or now) + call.expires_in if call.expires_in else None,
            meta=call.meta,
            unique_key=call.unique_key
            or (default_key(call.type, call.args, call.kwargs) if flow.unique_for else None),
            order_key=call.order_key,
            limit_key=call.limit_key or (call.type if flow.limited else None),
            batch_id=call.batch_id,
            keep_result=keep.total_seconds()
            if (keep := call.keep_result or getattr(declared, "keep_result", None))
            else None,
            fair_key=fair_key,
            fair_weight=fair_weight,
        )

    def enqueue(
        self, call: JobCall, *, in_: timedelta | None = None, at: datetime | None = None
    ) -> str:
        """Enqueue one job now, `in_` a while, or `at` an instant; returns its id once stored."""
        return self.enqueue_many([call], in_=in_, at=at)[0]

    async def enqueue_async(
        self, call: JobCall, *, in_: timedelta | None = None, at: datetime | None = None
    ) -> str:
        return (await self.enqueue_many_async([call], in_=in_, at=at))[0]

    def enqueue_many(
        self, calls: Sequence[JobCall], *, in_: timedelta | None = None, at: datetime | None = None
    ) -> list[str]:
        """Enqueue jobs together: all are encoded (none is sent if one cannot be), sent at once,
        then every broker ack is awaited. Unique jobs are sent one by one, each under its key's
        lock; a duplicate's place in the list is the id of the job that holds its key."""
        envelopes, stored = self._publish(calls, in_, at)
        stored.result()
        return self._enqueued(calls, envelopes)

    async def enqueue_many_async(
        self, calls: Sequence[JobCall], *, in_: timedelta | None = None, at: datetime | None = None
    ) -> list[str]:
        envelopes = self._envelopes(calls, in_, at)
        topics = [self.queue_topic(envelope) for envelope in envelopes]
        scheduled = any(envelope.run_at is not None for envelope in envelopes)
        await self.stored_async(lambda: self._send(envelopes), topics, scheduled)
        if any(envelope.unique_key is not None for envelope in envelopes):  # claims block
            return await asyncio.to_thread(self._enqueued, calls, envelopes)
        return self._enqueued(calls, envelopes)

    async def stored_async(
        self, send: Callable[[], Future[None]], topics: Iterable[str], scheduled: bool = False
    ) -> None:
        """Await the broker's acks of what `send` publishes to `topics` without blocking the
        loop: a topic's first message waits for the broker (subscribing, making its producer,
        asking the namespace's TTL for a `scheduled` job), so it is sent from a thread."""
        connection = self.connection
        if all(connection.ready(topic, scheduled) for topic in topics):
            stored = send()
        else:
            stored = await asyncio.to_thread(send)
        await asyncio.wrap_future(stored)

    def check_reachable(self, topics: Iterable[str]) -> None:
        """Before the first message to a topic: BrokerUnavailable at once when nothing listens at
        the service URL, where the client would time out after 10 s."""
        url = self.settings.service_url
        if not all(map(self.connection.prepared, topics)) and (
            refused := access.nothing_listens(url)
        ):
            raise refused

    def publish_envelope(self, envelope: Envelope, topic: str | None = None) -> Future[None]:
        """Send a ready envelope to its queue (or `topic`), due at its `run_at`."""
        destination = topic or self._queue_topic(envelope)
        return self.connection.publish(
            destination, encode(envelope), deliver_at=envelope.run_at, key=envelope.order_key,
            properties=weight_properties(envelope.fair_weight),
        )  # fmt: skip

    def queue_topic(self, envelope: Envelope) -> str:
        """The topic of the envelope's queue (its ordered jobs have one of their own, its fair jobs
        their lanes)."""
        topics = topics_for(self.settings, envelope.queue)
        if envelope.fair_key is not None:
            return topics.lane(lane_of(envelope.fair_key, self.settings.fair_lanes))
        return topics.ordered if envelope.order_key is not None else topics.jobs

    def _queue_topic(self, envelope: Envelope, reach: bool = False) -> str:
        """The topic of the envelope's queue, with the workers' subscription in place before
        the first job (`reach`: once something is known to listen at the service URL)."""
        topic = self.queue_topic(envelope)
        if reach:
            self.check_reachable([topic])
        try:
            self.connection.prepare_queue(topic, self.settings.subscription,
                                          key_shared=envelope.order_key is not None)  # fmt: skip
        except Exception as exc:
            url = self.settings.service_url
            raise (
                access.nothing_listens(url)
                or self.connection.refusal(exc, f"preparing queue {envelope.queue!r}")
                or BrokerUnavailable(f"Cannot prepare queue {envelope.queue!r} at {url}: {exc}")
            ) from exc
        return topic

    def _publish(
        self, calls: Sequence[JobCall], in_: timedelta | None, at: datetime | None
    ) -> tuple[list[Envelope], Future[None]]:
        envelopes = self._envelopes(calls, in_, at)
        return envelopes, self._send(envelopes)

    def _envelopes(
        self, calls: Sequence[JobCall], in_: timedelta | None, at: datetime | None
    ) -> list[Envelope]:
        return [self.hooks.before_enqueue(self.envelope(call, in_=in_, at=at)) for call in calls]

    def _send(self, envelopes: list[Envelope]) -> Future[None]:
        """Send every job but the unique ones (`_enqueued` claims their keys); blocks when a
        queue is used for the first time, or the namespace's TTL is asked."""
        # Encode all, then send: a job whose arguments cannot be encoded fails the whole call
        # before any of its jobs is sent.
        messages = [(self._queue_topic(env, reach=True), encode(env), env) for env in envelopes]
        for envelope in envelopes:
            if envelope.run_at is not None:
                self._check_ttl(envelope)
        sent = [(topic, data, env) for topic, data, env in messages if env.unique_key is None]
        acks = Acks(len(sent))
        for topic, data, env in sent:
            self.connection.publish(topic, data, deliver_at=env.run_at, key=env.order_key,
                                    properties=weight_properties(env.fair_weight),
                                    acks=acks)  # fmt: skip
        return acks.stored

    def _enqueued(self, calls: Sequence[JobCall], envelopes: list[Envelope]) -> list[str]:
        """The ids, once the unique jobs have claimed their keys (blocks); DuplicateJob for the
        first duplicate whose call asked for it, once every other job is enqueued."""
        ids, duplicate = [], None
        for call, envelope in zip(calls, envelopes, strict=True):
            if envelope.unique_key is not None:
                job = self.jobs.get(envelope.type)
                hold = hold_for(job.flow if job else None)
                holder = self.unique_keys.claim(envelope, hold, self.publish_envelope)
                if holder != envelope.id:
                    ids.append(holder)
                    if call.if_duplicate == "raise" and duplicate is None:
                        duplicate = DuplicateJob(envelope.unique_key, holder)
                    continue
            self.hooks.emit("after_enqueue", envelope)
            ids.append(envelope.id)
        if duplicate is not None:
            raise duplicate
        return ids

    def _check_ttl(self, envelope: Envelope) -> None:
        """Refuse a job the namespace's message TTL would delete before it is due."""
        assert envelope.run_at is not None
        ttl = self.connection.message_ttl()
        delay = (envelope.run_at - envelope.created_at).total_seconds()
        if ttl is not None and delay >= ttl:
            raise EnqueueError(
                f"{envelope.type} is due in {delay:.0f} s, but namespace "
                f"{self.settings.full_namespace} deletes messages after {ttl:.0f} s (message "
                "TTL): raise the TTL or schedule the job closer."
            )

    def batch(self, **options: Unpack[BatchOptions]) -> Batch:
        """Jobs with callbacks enqueued once all have settled (docs/workflows.md):
        `with app.batch(on_complete=report.call()) as batch: batch.enqueue(...)`."""
        return Batch(self, **options)

    def current_batch(self) -> Batch:
        """The running job's batch, to add jobs to it (RuntimeError if it belongs to none)."""
        return Batch.of_running_job(self, current_job().envelope)

    def pause(self, queue: str) -> None:
        """Stop every worker taking `queue`'s jobs (they stay stored); returns once stored."""
        pauses.pause(self.connection, queue)

    def resume(self, queue: str) -> None:
        """Let workers take `queue`'s jobs again; returns once stored."""
        pauses.resume(self.connection, queue)

    def set_rate_limit(self, queue: str, per_second: int | None) -> None:
        """At most `per_second` of the queue's jobs start a second, cluster-wide; None: no limit."""
        rates.set_rate_limit(self.connection, check_queue_name(queue), per_second)

    def set_dead_retention(
        self, queue: str, max_age: timedelta | None = None, max_size: int | str | None = None
    ) -> retention.DeadRetention:
        """Keep `queue`'s dead letters `max_age` long and/or up to `max_size` bytes (or "1G");
        None lifts that limit. Returns what is in force (see retention.py)."""
        return retention.set_dead_retention(self.connection, queue, max_age, max_size)

    def cancel(self, job_id: str) -> None:
        """Cancel a job: it does not start, or stops (its result discarded); once stored."""
        cancels.cancel(self.connection, job_id, at=self.clock())

    def close(self) -> None:
        self.close_workflows()
        if self._unique_keys is not None:
            self._unique_keys.close()
            self._unique_keys = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
