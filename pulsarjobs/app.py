"""The App: settings, the jobs it knows and their schedules, and enqueueing them.

Declaring a job binds nothing to a broker; the connection opens on the first enqueue or when a
worker starts. Sync and asyncio enqueue share one path: publish every message asynchronously,
then wait for the broker's acks, blocking or awaiting. The asyncio entry points never block
their loop: what waits for the broker (a queue's first job subscribes and makes its producer)
runs on a thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any, Literal, ParamSpec, TypeVar, Unpack, overload

from pulsarjobs import tracing
from pulsarjobs.calls import envelope_of
from pulsarjobs.clock import Clock, utc_now
from pulsarjobs.errors import BrokerUnavailable, ConfigurationError, EnqueueError
from pulsarjobs.flow import rates
from pulsarjobs.flow.debounce import Debounces
from pulsarjobs.flow.fairness import lane_of, weight_properties
from pulsarjobs.flow.unique import DuplicateJob, UniqueKeys, hold_for
from pulsarjobs.grouping.job import GroupedJob
from pulsarjobs.jobs import (
    DEFAULT_QUEUE,
    DurableDecorator,
    Job,
    JobCall,
    JobDecorator,
    JobOptions,
    check_options,
)
from pulsarjobs.logs import LoggingMiddleware
from pulsarjobs.middleware import Hooks, Middleware
from pulsarjobs.operations import cancels, pauses, retention
from pulsarjobs.operations.cancel_matching import JobKeys, check_keys, on_broker
from pulsarjobs.scheduling.cron import (
    Schedule,
)
from pulsarjobs.scheduling.periodic import PeriodicJobs
from pulsarjobs.settings import Settings
from pulsarjobs.transport import access
from pulsarjobs.transport.answers import Acks, Outgoing
from pulsarjobs.transport.closing import Closing
from pulsarjobs.transport.connection import Connection
from pulsarjobs.transport.job_index import JobIndex
from pulsarjobs.transport.refusals import refusal
from pulsarjobs.transport.topics import check_queue_name, topics_for
from pulsarjobs.wire.envelope import Envelope, encode
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
        self.job_index = JobIndex(lambda: self.connection)  # where each stored job is
        self._debounces: Debounces | None = None
        self.clock: Clock = utc_now  # when jobs are created and due; TestRunner's is virtual
        self.matching_jobs_cancelled = on_broker  # cancel_matching's; the TestRunner's own
        self._holders = 0  # workers running on it: the last to stop closes it
        self._holders_lock = threading.Lock()

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

    @property
    def debounces(self) -> Debounces:
        """The debounce windows (flow/debounce.py), read once a debounced job is enqueued or due."""
        if self._debounces is None:
            self._debounces = Debounces(self.connection, self.clock)
        return self._debounces

    @debounces.setter
    def debounces(self, debounces: Debounces | None) -> None:
        self._debounces = debounces

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
            declared: Job[Any, Any]
            if options.get("group") is not None:  # its handler takes a list of members
                if durable:
                    raise ConfigurationError("a grouped job cannot be durable")
                declared = GroupedJob.declared_grouped(self, function, options, current_job)
            else:
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
        """The envelope a call is sent as (calls.py)."""
        return envelope_of(call, self.jobs.get(call.type), self.clock(), in_, at,
                           self.fair_queues)  # fmt: skip

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
        if any(env.unique_key or env.debounce_key for env in envelopes):  # claims, calls block
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
        chain_id = envelope.chain.id if envelope.chain else None
        acks = self.job_index.acks(envelope.id, envelope.queue, destination, None, chain_id)
        return self.connection.publish(
            destination, encode(envelope), deliver_at=envelope.run_at, key=envelope.order_key,
            properties=weight_properties(envelope.fair_weight), acks=acks,
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
                or refusal(self.settings, exc, f"preparing queue {envelope.queue!r}")
                or access.web_port_instead(url)
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
        """Send every job but the unique and debounced ones (`_enqueued` sends those); blocks when a
        queue is used for the first time, or the namespace's TTL is asked."""
        # Encode all, then send: a job whose arguments cannot be encoded fails the whole call
        # before any of its jobs is sent.
        messages = [(self._queue_topic(env, reach=True), encode(env), env) for env in envelopes]
        for envelope in envelopes:
            if envelope.run_at is not None:
                self._check_ttl(envelope)
        sent = [(topic, data, env) for topic, data, env in messages
                if env.unique_key is None and env.debounce_key is None]  # fmt: skip
        acks = Acks(len(sent))
        outgoing = []
        for topic, data, env in sent:
            chain_id = env.chain.id if env.chain else None
            indexed = self.job_index.acks(env.id, env.queue, topic, acks, chain_id)
            outgoing.append(Outgoing(topic, data, env.run_at, weight_properties(env.fair_weight),
                                     env.order_key, indexed))  # fmt: skip
        self.connection.publish_together(outgoing)
        return acks.stored

    def _enqueued(self, calls: Sequence[JobCall], envelopes: list[Envelope]) -> list[str]:
        """The ids, once the unique jobs have claimed their keys and the debounced ones joined
        their windows (blocks); DuplicateJob for the
        first duplicate whose call asked for it, once every other job is enqueued."""
        ids, duplicate = [], None
        for call, envelope in zip(calls, envelopes, strict=True):
            if envelope.debounce_key is not None:  # of a job declared with debounce=: envelope()
                debounce = self.jobs[envelope.type].flow.debounce
                assert debounce is not None
                envelope = self.debounces.call(envelope, debounce, self.publish_envelope)
            elif envelope.unique_key is not None:
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

    def cancel_matching(self, queue: str | None = None, **keys: Unpack[JobKeys]) -> int:
        """Cancel every waiting, scheduled or retrying job that carries all of `keys` (in
        `queue`, or in any), e.g. `cancel_matching(type="sync", unique_key="user:42")`; returns
        how many, once their cancels are stored (operations/cancel_matching.py)."""
        check_keys(keys)
        return self.matching_jobs_cancelled(self.settings, keys, queue)

    def cancel(self, job_id: str) -> None:
        """Cancel a job: it does not start, or stops (its result discarded); once stored."""
        cancels.cancel(self.connection, job_id, at=self.clock())

    def hold(self) -> None:
        """A worker starts on this app (several may, each on its own thread)."""
        with self._holders_lock:
            self._holders += 1

    def release(self) -> None:
        """A worker stopped: the last one closes the app, and the others keep its connection."""
        with self._holders_lock:
            self._holders -= 1
            last = self._holders <= 0
        if last:
            self.close()

    def close(self) -> None:
        self.close_workflows()
        if self._unique_keys is not None:
            self._unique_keys.close()
            self._unique_keys = None
        self.job_index.close()
        if self._debounces is not None:
            self._debounces.close()
            self._debounces = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
