"""Ready work: how many of a queue's jobs are due now and not yet handed to a worker, and how
long the oldest due one has waited — exact at any depth and with no worker connected, so that
an autoscaler can scale workers from zero (the dashboard serves it at /api/ready).

The broker cannot say it alone: a subscription's backlog counts jobs due tomorrow too, and its
count of delayed messages covers only what a connected consumer made it read ahead. So the
backlog is read — whole at the first look, then only what came since — and each message still
held is remembered by its position and due time (16 bytes a job); at every look the ones the
subscription acknowledged since are dropped, read off its cursor. A deep first read stops at a
time budget and goes on at the next look; until it is through, the figures say `exact=False`.

The same reading tells the rest of what a queue holds exactly, each job counted once: scheduled
(due later), retrying (on the retry topic, waiting out a backoff) and cancelled (held until it
comes due, when a worker drops it: the job's id is remembered too, as a 64-bit hash, 24 bytes a
job in all). The dashboard's pages, `pulsarjobs queues` and /metrics read these figures.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pulsarjobs.errors import NotFound
from pulsarjobs.operations.cancels import cancelled_jobs
from pulsarjobs.operations.fair_keys import lane_topics
from pulsarjobs.operations.held_tally import Tally, tallied
from pulsarjobs.operations.inspector import Inspector, QueueStats, due_time
from pulsarjobs.transport.backlog import (
    Cursor,
    Position,
    position_of,
    read_backlog,
    subscription_cursor,
)
from pulsarjobs.transport.topic_stats import subscription_of
from pulsarjobs.transport.topics import topics_for

READ_BUDGET_SECONDS = 2.0  # reading per look: below the HTTP timeouts of autoscalers' polls


@dataclass(frozen=True, slots=True)
class ReadyQueue:
    queue: str
    ready: int  # due now, not yet handed to a worker, not cancelled
    scheduled: int  # due later, enqueued for later, not cancelled
    retrying: int  # due later on the retry topic (a retry waiting out its backoff), not cancelled
    cancelled: int  # held, and cancelled: dropped when it comes due
    oldest_ready_seconds: float | None  # how long the oldest due job not yet acknowledged
    # (waiting or running) has been due; None when none is due
    paused: bool  # workers take none of its jobs: an autoscaler should not count them
    exact: bool  # False while a deep backlog is still being read: counts cover what was read


def packed(position: Position) -> int:
    """A position as one sortable integer (an entry of -1 stands before the ledger's first)."""
    return (position[0] << 32) + position[1]


@dataclass
class _Held:
    """What a subscription still holds of one topic (or partition), as far as it was read:
    each message's packed position, due time (epoch seconds) and job id's hash, in the order of
    positions."""

    positions: array[int] = field(default_factory=lambda: array("q"))
    dues: array[float] = field(default_factory=lambda: array("d"))
    ids: array[int] = field(default_factory=lambda: array("q"))
    read_to: Position | None = None  # the last position read; None: read from the start
    seen: tuple[object, ...] | None = None  # the topic's stats when last read through
    forgotten: int = 0  # how many times acknowledged messages were dropped: counts are stale
    tally: Tally | None = None  # the jobs counted at the last look (held_tally.py)

    def forget_acked(self, cursor: Cursor) -> None:
        """Drop what the subscription acknowledged: all up to its mark-delete position, and the
        ranges acknowledged out of order beyond it."""
        gone = [(-1, bisect.bisect_right(self.positions, packed(cursor.mark_delete)))]
        for after, through in cursor.acked:
            start = bisect.bisect_right(self.positions, packed(after))
            gone.append((start, bisect.bisect_right(self.positions, packed(through))))
        if gone == [(-1, 0)]:
            return
        self.forgotten += 1
        kept_positions, kept_dues, kept_ids = array("q"), array("d"), array("q")
        begin = 0
        for start, end in gone:
            if start > begin:
                kept_positions += self.positions[begin:start]
                kept_dues += self.dues[begin:start]
                kept_ids += self.ids[begin:start]
            begin = max(begin, end)
        kept_positions += self.positions[begin:]
        kept_dues += self.dues[begin:]
        kept_ids += self.ids[begin:]
        self.positions, self.dues, self.ids = kept_positions, kept_dues, kept_ids


class ReadyWork:
    """Ready jobs per queue, each look reading only what reached the broker since the last.
    One look at a time: it is shared by every request of a dashboard."""

    def __init__(self, inspector: Inspector, read_budget: float = READ_BUDGET_SECONDS) -> None:
        self.inspector = inspector
        self.read_budget = read_budget
        self._held: dict[str, _Held] = {}  # by topic or partition
        self._looking = threading.Lock()

    def queues(self, names: Sequence[str] | None = None) -> list[ReadyQueue]:
        """The named queues (every queue when none are named); a queue without a topic yet
        has no work."""
        with self._looking:
            deadline = time.monotonic() + self.read_budget
            chosen = list(names) if names else self.inspector.queue_names()
            paused = self.inspector.paused_queues() if chosen else {}
            cancelled = cancelled_hashes(self.inspector) if chosen else frozenset()
            inspector = self.inspector  # the namespace's topics, listed once for every queue
            existing = inspector.admin.topics(inspector.settings.full_namespace) if chosen else []
            return [self._queue(name, name in paused, cancelled, existing, deadline)
                    for name in chosen]  # fmt: skip

    def exact(self, stats: Sequence[QueueStats]) -> list[QueueStats]:
        """The inspector's stats of these queues with the counts this reading makes exact."""
        ready = {queue.queue: queue for queue in self.queues([each.queue for each in stats])}
        return [with_exact_counts(each, ready[each.queue]) for each in stats]

    def scheduled_start(self, queue: str, after: Position | None) -> Position | None:
        """Where a listing of the queue's jobs due later (after `after`) can start reading, as
        of the last look: before the first job held that is due later (the jobs before it are
        due: a job due never becomes due later), or the last read when none is; None when not
        known (not looked at yet, or a partitioned topic)."""
        with self._looking:
            held = self._held.get(topics_for(self.inspector.settings, queue).jobs)
            if held is None or held.read_to is None:
                return None
            now, positions, dues = time.time(), held.positions, held.dues
            first = bisect.bisect_right(positions, packed(after)) if after is not None else 0
            later = next((index for index in range(first, len(dues)) if dues[index] > now), None)
            if later is None:
                return held.read_to if after is None or held.read_to > after else None
            ledger, entry = positions[later] >> 32, positions[later] & 0xFFFFFFFF
            return ledger, entry - 1  # a reader starts after it

    def count_scheduled(self, queue: str) -> tuple[int, bool]:
        """The jobs held on the queue's topic that are due later (cancelled ones too, as a
        listing shows them), read up to now; and whether the count is complete."""
        (looked,) = self.queues([queue])
        with self._looking:
            held = self._held.get(topics_for(self.inspector.settings, queue).jobs)
            now = time.time()
            return (sum(1 for due in held.dues if due > now) if held else 0), looked.exact

    def _queue(
        self,
        name: str,
        paused: bool,
        cancelled: frozenset[int],
        existing: Sequence[str],
        deadline: float,
    ) -> ReadyQueue:
        topics = topics_for(self.inspector.settings, name)
        subscription = self.inspector.settings.subscription
        held: list[tuple[_Held, bool]] = []  # and whether it is the retry topic's
        delivered, exact = 0, True
        lanes = lane_topics(self.inspector.admin, self.inspector.settings, name, existing)
        for topic in (topics.jobs, topics.retry, topics.ordered, *lanes):
            try:
                stats = self.inspector.admin.summed_stats(topic)
                parts = self.inspector.admin.parts(topic)
            except NotFound:
                continue
            delivered += int(subscription_of(stats, subscription).get("unackedMessages", 0))
            seen = unchanged_since(stats, subscription) if len(parts) == 1 else None
            for part in parts:
                exact = self._look(part, deadline, seen) and exact
                held.append((self._held[part], topic == topics.retry))
        now = time.time()
        due, later, retrying, dropped, oldest = 0, 0, 0, 0, math.inf
        for each, retries in held:
            tally = each.tally = tallied(each.dues, each.ids, each.forgotten, cancelled, now,
                                         each.tally)  # fmt: skip
            due, dropped = due + tally.due, dropped + tally.dropped
            if retries:
                retrying += tally.later
            else:
                later += tally.later
            if tally.oldest_due is not None:
                oldest = min(oldest, tally.oldest_due)
        return ReadyQueue(
            queue=name,
            ready=max(0, due - delivered),
            scheduled=later,
            retrying=retrying,
            cancelled=dropped,
            oldest_ready_seconds=now - oldest if due else None,
            paused=paused,
            exact=exact,
        )

    def _look(self, topic: str, deadline: float, seen: tuple[object, ...] | None = None) -> bool:
        """Bring what is held of `topic` up to date; False when the time budget ran out first.
        `seen`: what the topic's stats say now, if the same as at the last look read through,
        nothing came or went since and nothing is read."""
        if seen is not None and topic in self._held and self._held[topic].seen == seen:
            return True
        admin, subscription = self.inspector.admin, self.inspector.settings.subscription
        cursor = subscription_cursor(admin, topic, subscription)
        if cursor is None:  # no topic or no subscription (any more): nothing is held
            self._held.pop(topic, None)
            return True
        held = self._held.setdefault(topic, _Held())
        held.forget_acked(cursor)
        messages = read_backlog(
            admin,
            self.inspector.client,
            self.inspector.settings.service_url,
            topic,
            subscription,
            held.read_to,
            self.inspector.crypto,
        )
        try:
            for message in messages:
                position = position_of(message.message_id())
                envelope = self.inspector.envelope_of(message)
                held.positions.append(packed(position))
                held.dues.append(due_time(message, envelope).timestamp())
                held.ids.append(0 if envelope is None else hash(envelope.id))
                held.read_to = position
                if time.monotonic() > deadline:
                    held.seen = None
                    return False
        finally:
            messages.close()
        held.seen = seen
        return True


def unchanged_since(stats: dict[str, Any], subscription: str) -> tuple[object, ...]:
    """What changes in a topic's stats whenever a message comes, is acknowledged or skipped:
    the same at two looks, the subscription holds the same messages (and a look reads none)."""
    held = subscription_of(stats, subscription)
    acked = held.get("lastMarkDeleteAdvancedTimestamp"), held.get("lastAckedTimestamp")
    return stats.get("msgInCounter"), held.get("msgBacklog"), *acked


def with_exact_counts(stats: QueueStats, ready: ReadyQueue) -> QueueStats:
    return replace(
        stats,
        waiting=ready.ready,
        scheduled=ready.scheduled,
        retrying=ready.retrying,
        cancelled=ready.cancelled,
        oldest_seconds=ready.oldest_ready_seconds,
        exact=ready.exact,
    )


def cancelled_hashes(inspector: Inspector) -> frozenset[int]:
    """The hashes of the namespace's cancelled job ids, as `_Held.ids` holds them (str hashes
    differ between processes, never within one)."""
    return frozenset(hash(job_id) for job_id in cancelled_jobs(inspector.connection))
