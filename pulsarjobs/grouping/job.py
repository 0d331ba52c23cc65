"""A grouped job: each `enqueue` stores one member; a worker hands a group of members to one run
of the handler, which takes them as a list (docs/flow-control.md, "Grouped jobs").

A member is its own envelope on its queue's group topic (`<queue>-groups`), its group key as
its message key: the workers read that topic on a Key_Shared subscription, so one worker at a
time collects a key's members (worker/group_collector.py). A group runs as one ordinary job of
the queue — retried, timed out and dead-lettered as the job declares. If its last attempt fails,
the group is split instead of dead-lettered: each member is enqueued again as a group of one
with fresh attempts, so that only a poisoned member ends in the dead-letter topic, alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import structlog

from pulsarjobs.clock import Clock
from pulsarjobs.grouping.members import group_envelope, members_of
from pulsarjobs.grouping.options import DEFAULT_GROUP_KEY, GroupOptions, Member
from pulsarjobs.jobs import Job, JobCall, JobOptions
from pulsarjobs.settings import Settings
from pulsarjobs.snooze import Snooze
from pulsarjobs.transport.answers import Acks, Outgoing
from pulsarjobs.transport.connection import Connection
from pulsarjobs.transport.job_index import JobIndex
from pulsarjobs.transport.topics import check_queue_name, topics_for
from pulsarjobs.wire.envelope import Envelope, encode, new_id

log = structlog.get_logger("pulsarjobs.grouping")


class CurrentJob(Protocol):
    """The job running now (worker/progress.py), as a group's run reads it."""

    @property
    def envelope(self) -> Envelope: ...


class GroupApp(Protocol):
    """What a grouped job needs of its App."""

    @property
    def settings(self) -> Settings: ...
    @property
    def connection(self) -> Connection: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def jobs(self) -> dict[str, Job[Any, Any]]: ...
    @property
    def job_index(self) -> JobIndex: ...


class GroupedJob(Job[..., Any]):
    """`@app.job(group=GroupOptions(...))` on a handler that takes `list[Member]`."""

    group: GroupOptions

    @classmethod
    def declared_grouped(
        cls, app: GroupApp, func: Callable[..., Any], options: JobOptions,
        current: Callable[[], CurrentJob],
    ) -> GroupedJob:  # fmt: skip
        job = cls.declared(app, func, options, durable=False)  # type: ignore[arg-type]
        group = options.get("group")
        assert isinstance(job, GroupedJob) and group is not None
        job.group = group
        job.types = None  # its handler's annotation is of Members; the run passes their records
        job.func = _run_members(job, app, current)
        return job

    def check_arguments(self, args: Sequence[object], kwargs: Mapping[str, object]) -> None:
        """A group's run takes one list of members' records, as its worker makes it: a call of
        the job itself (`app.enqueue(job.call(...))`) is refused where it is made."""
        members = args[0] if len(args) == 1 and not kwargs else None
        if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
            raise TypeError(f"enqueue the members of grouped job {self.name!r} with "
                            f"{self.name}.enqueue(...) or .enqueue_to(key, ...)")  # fmt: skip

    def enqueue(self, *args: Any, **kwargs: Any) -> str:
        """Enqueue one member into the job's one unkeyed group; returns its id once stored."""
        return self.enqueue_many([(DEFAULT_GROUP_KEY, self.call(*args, **kwargs))])[0]

    def enqueue_to(self, key: str, *args: Any, **kwargs: Any) -> str:
        """Enqueue one member into the group of `key`."""
        return self.enqueue_many([(key, self.call(*args, **kwargs))])[0]

    async def enqueue_async(self, *args: Any, **kwargs: Any) -> str:
        return await asyncio.to_thread(self.enqueue, *args, **kwargs)

    async def enqueue_to_async(self, key: str, *args: Any, **kwargs: Any) -> str:
        return await asyncio.to_thread(self.enqueue_to, key, *args, **kwargs)

    def enqueue_many(self, keyed: Iterable[tuple[str, JobCall]]) -> list[str]:
        """Enqueue members, each `(group key, job.call(...))`, sent at once; their ids once
        the broker has them all."""
        app: GroupApp = self.app  # type: ignore[assignment]
        now, sent = app.clock(), []
        for key, call in keyed:
            if not isinstance(key, str):
                raise TypeError(f"a group key is a str, got {key!r}")
            queue = check_queue_name(call.queue or self.queue)
            member = Envelope(id=call.job_id or new_id(), type=self.name, queue=queue,
                              args=call.args, kwargs=call.kwargs, created_at=now,
                              meta=call.meta)  # fmt: skip
            sent.append((topics_for(app.settings, queue).groups, key, encode(member), member))
        for topic in {topic for topic, *_ in sent}:
            app.connection.prepare_queue(topic, app.settings.subscription, key_shared=True)
        acks = Acks(len(sent))
        app.connection.publish_together([
            Outgoing(topic, data, None, None, key,
                     app.job_index.acks(member.id, member.queue, topic, acks))  # job_index.py
            for topic, key, data, member in sent
        ])  # fmt: skip
        if sent:
            acks.stored.result()
        return [member.id for *_, member in sent]


def split(app: GroupApp, envelope: Envelope) -> None:
    """Enqueue each member of a group's job as a group of one, and wait until all are stored."""
    job, now = app.jobs.get(envelope.type), app.clock()
    singles = [group_envelope(job, envelope.type, envelope.queue, [member], now)
               for member in members_of(envelope)]  # fmt: skip
    queue = topics_for(app.settings, envelope.queue).jobs
    acks = Acks(len(singles))
    app.connection.publish_together(
        [Outgoing(queue, encode(single), None, None, None, acks) for single in singles]
    )
    acks.stored.result()


def _run_members(
    job: GroupedJob, app: GroupApp, current: Callable[[], CurrentJob]
) -> Callable[..., Any]:
    """What a worker calls for a group's job: the handler with its Members; a last attempt
    that fails with more than one member splits the group (the run then succeeds)."""

    def splits(exc: Exception) -> bool:
        envelope = current().envelope
        if isinstance(exc, Snooze) or not envelope.retry.exhausted(envelope.attempt):
            return False
        if len(envelope.args[0]) < 2:  # type: ignore[arg-type]
            return False
        log.warning("group failed its last attempt; its members run again one by one",
                    job_id=envelope.id, job_type=envelope.type,
                    members=len(envelope.args[0]), error=repr(exc))  # type: ignore[arg-type]  # fmt: skip
        return True

    if job.is_async:

        async def run_async(members: Sequence[Any]) -> Any:
            try:
                return await job.handler([Member.from_arg(m) for m in members])
            except Exception as exc:
                if not splits(exc):
                    raise
                await asyncio.to_thread(split, app, current().envelope)
                return None

        return run_async

    def run(members: Sequence[Any]) -> Any:
        try:
            return job.handler([Member.from_arg(m) for m in members])
        except Exception as exc:
            if not splits(exc):
                raise
            split(app, current().envelope)
            return None

    return run
