"""Cancel by key: every waiting, scheduled or retrying job that carries a key — a deleted
user's pending jobs — cancelled, and counted.

A job matches when each key given equals the envelope attribute of that name (`JobKeys`: a new
key is one line there). Each queue's topics are read once, as the workers' subscription holds
them (backlog.py): its jobs, its ordered jobs and its subscription's retries. Every matching job
is cancelled as `app.cancel` cancels one (a mark that workers follow: cancels.py), then
acknowledged on the workers' subscription as the dashboard's bulk cancel does (bulk_jobs.py), so
that it leaves the lists at once; an ordered job is left where it is (its Key_Shared
subscription keeps its key's order), and a worker drops it when its turn comes. A matching job
a worker runs right now is cancelled as a running one is. What a worker would give back as it
drops a cancelled job is given back here: a unique key, a debounce window whose latest call it
was (flow/). A grouped job's members (`group=`: their group key) are cancelled where they wait
for their group, on its queue's group topic: the worker that collects them leaves them out of
the group it stores (group_collector.py). Jobs enqueued after the read are not cancelled: only
what was stored is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from typing import TypedDict

import pulsar

from pulsarjobs.flow.debounce import Debounces
from pulsarjobs.flow.unique import UniqueKeys
from pulsarjobs.operations.ackers import Ackers
from pulsarjobs.operations.cancels import cancel, cancelled_jobs
from pulsarjobs.operations.fair_keys import lane_topics
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.operations.replay import Progress
from pulsarjobs.settings import Settings
from pulsarjobs.transport.backlog import read_backlog
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import Envelope


class JobKeys(TypedDict, total=False):
    """What `cancel_matching` matches on, each an Envelope attribute of the same name (`group`:
    a grouped job's member's group key, its message's key)."""

    type: str
    unique_key: str
    order_key: str
    limit_key: str
    batch_id: str
    debounce_key: str
    fair_key: str
    group: str


def check_keys(keys: Mapping[str, object]) -> None:
    """A clear error for no key, an unknown one or an empty value."""
    if not keys:
        raise ValueError(f"give at least one key to match: {', '.join(JobKeys.__annotations__)}")
    if unknown := sorted(set(keys) - set(JobKeys.__annotations__)):
        raise ValueError(f"cannot match on {', '.join(unknown)}; the keys are "
                         f"{', '.join(JobKeys.__annotations__)}")  # fmt: skip
    if empty := sorted(name for name, value in keys.items() if not value):
        raise ValueError(f"give a value to match for {', '.join(empty)}")


def matches(envelope: Envelope, keys: Mapping[str, object], group: str | None = None) -> bool:
    """Whether the job carries every key; `group`: the group key of a member (None: none)."""
    return all(
        (group if name == "group" else getattr(envelope, name)) == value
        for name, value in keys.items()
    )


def cancel_matching(
    inspector: Inspector,
    keys: Mapping[str, object],
    queues: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> int:
    """Cancel every job of `queues` (None: every queue) that carries all `keys`, as stored now;
    returns how many were cancelled (jobs cancelled already are not counted again)."""
    check_keys(keys)
    connection = inspector.connection
    marks = cancelled_jobs(connection)
    debounces, unique_keys = Debounces(connection), UniqueKeys(connection)
    cancelled = 0
    try:
        with Ackers(inspector) as ackers:
            for message, envelope, ordered, group in _held_jobs(inspector, queues, progress):
                mark = marks.get(envelope.id)
                if not matches(envelope, keys, group) or (
                    mark is not None and envelope.created_at <= mark.cancelled_at
                ):
                    continue
                marks[envelope.id] = cancel(connection, envelope.id)
                if not ordered and group is None:  # else it is dropped when its turn comes
                    ackers.acknowledge(message)
                if envelope.debounce_key is not None:
                    debounces.settled(envelope)
                if envelope.unique_key is not None and not ordered and group is None:
                    unique_keys.release(envelope.unique_key, envelope.id)
                cancelled += 1
    finally:
        debounces.close()
        unique_keys.close()
    return cancelled


def on_broker(settings: Settings, keys: Mapping[str, object], queue: str | None) -> int:
    """`app.cancel_matching` on the broker of `settings` (the TestRunner has its own)."""
    with Inspector(settings) as inspector:
        return cancel_matching(inspector, keys, None if queue is None else [queue])


def _held_jobs(
    inspector: Inspector, queues: Sequence[str] | None, progress: Progress | None
) -> Iterator[tuple[pulsar.Message, Envelope, bool, str | None]]:
    """Every job the workers' subscription holds in `queues`, with whether it is an ordered one
    and, for a grouped job's member, its group key."""
    settings = inspector.settings
    for queue in inspector.queue_names() if queues is None else queues:
        topics = topics_for(settings, queue)
        lanes = lane_topics(inspector.admin, settings, queue)  # a fair queue's (fair_keys.py)
        for topic in (topics.jobs, topics.retry, topics.ordered, *lanes, topics.groups):
            backlog = read_backlog(inspector.admin, inspector.client, settings.service_url, topic,
                                   settings.subscription, None, inspector.crypto)  # fmt: skip
            with closing(backlog):
                for message in backlog:
                    if progress is not None:
                        progress(1)
                    if (envelope := inspector.envelope_of(message)) is not None:
                        group = message.partition_key() if topic == topics.groups else None
                        yield message, envelope, topic == topics.ordered, group
