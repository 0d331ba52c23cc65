"""Browsing what a queue holds, a page at a time: its waiting, scheduled and retrying jobs, its
dead letters, and one message by its position. Read as the Inspector reads (admin REST calls and
readers): looking never takes a job from a worker, never acknowledges, never creates a topic.

A page starts after a cursor, a message position "ledger:entry" (the first page at what the
subscription has acknowledged), and reads at most `scan` messages, so that a filter matching
little still answers quickly. It tells how many messages it read, how many the subscription holds
in all, and where the next page starts: never a silent cap. A partitioned queue is read in the
order of positions over all its partitions (see backlog.py), so one cursor pages through them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Literal, TypeVar

import pulsar

from pulsarjobs.clock import utc_now
from pulsarjobs.errors import NotFound
from pulsarjobs.operations.dead_letters import DeadLetter, DeadLetterFilter, read_dead_letter
from pulsarjobs.operations.inspector import Inspector, due_time
from pulsarjobs.operations.job_search import JobSearch
from pulsarjobs.transport.backlog import (
    Position,
    partition_holding,
    position_of,
    position_text,
    read_at,
    read_backlog,
    subscription_cursor,
    unreadable_why,
)
from pulsarjobs.transport.backlog_newest import Order
from pulsarjobs.transport.topic_stats import subscription_of
from pulsarjobs.transport.topics import DEAD_LETTER_SUBSCRIPTION, topics_for
from pulsarjobs.wire.envelope import Envelope

PAGE_SIZES = (25, 50, 100)
SCAN_PER_PAGE = 5_000  # messages a page reads at most before it says where to go on

Where = Literal["jobs", "retry", "dead"]  # a queue's topic: its jobs, its retries, its dead
WHERE: tuple[Where, ...] = ("jobs", "retry", "dead")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class JobMessage:
    """A job (or a message that is no job) on a queue's jobs or retry topic."""

    queue: str
    where: Where
    position: str  # "ledger:entry" on its topic
    published_at: datetime
    due_at: datetime
    envelope: Envelope | None  # None: the message is no job envelope
    size: int  # bytes
    unreadable: str = ""  # why there is no envelope (encrypted without the key, no job at all)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    matched: int  # of the messages read, those the page lists
    scanned: int  # messages this page read
    held: int  # messages the subscription holds on the topic, read or not
    after: str | None  # the cursor this page started after; None: the first page
    next_after: str | None  # the cursor of the next page; None: this page read to the end


@dataclass(frozen=True, slots=True)
class Count:
    """How many a list holds; when it is too long to read whole, at least how many."""

    found: int
    complete: bool

    def __str__(self) -> str:
        return f"{self.found:,}" if self.complete else f"at least {self.found:,}"


@dataclass(frozen=True, slots=True)
class FoundMessage:
    """One message by its position, and whether the subscription still holds it."""

    queue: str
    where: Where
    position: str
    held: bool  # False: acknowledged already (run, replayed or purged)
    job: JobMessage | None  # for the jobs and retry topics
    letter: DeadLetter | None  # for the dead-letter topic


class Browser:
    """Pages of a queue's messages, read through an Inspector."""

    def __init__(self, inspector: Inspector) -> None:
        self.inspector = inspector
        self.settings = inspector.settings

    def waiting(
        self, queue: str, after: Position | None, size: int, search: JobSearch | None = None
    ) -> Page[JobMessage]:
        """Jobs due now on the queue's topic, oldest first (those a worker is running too: a
        reader cannot tell them apart); with `search`, those it matches (job_search.py)."""
        now = utc_now()
        return self._jobs(queue, "jobs", after, size, lambda job: job.due_at <= now, search)

    def scheduled(
        self,
        queue: str,
        after: Position | None,
        size: int,
        search: JobSearch | None = None,
        start: Position | None = None,
    ) -> Page[JobMessage]:
        """Jobs on the queue's topic due later (enqueued with in_/at), in the order enqueued;
        read from `start` when the caller knows no job due later comes before it (ReadyWork's
        scheduled_start)."""
        now = utc_now()
        due_later: Callable[[JobMessage], bool] = lambda job: job.due_at > now  # noqa: E731
        return self._jobs(queue, "jobs", after, size, due_later, search, start)

    def retries(
        self, queue: str, after: Position | None, size: int, search: JobSearch | None = None
    ) -> Page[JobMessage]:
        """Jobs on the subscription's retry topic: those that failed or snoozed before, durable
        jobs asleep (parked) and any other published again to run later, waiting for their
        time, or due and about to run again."""
        return self._jobs(queue, "retry", after, size, is_retry, search)

    def dead(
        self,
        queue: str,
        matching: DeadLetterFilter,
        after: Position | None,
        size: int,
        search: JobSearch | None = None,
        order: Order = "newest",
    ) -> Page[DeadLetter]:
        """Dead letters picked by `matching` (and `search`), in `order`: the newest first, or
        the oldest; `after` is the last of the page before, in that order."""
        held = self.inspector.dead_count(queue)
        with closing(self.inspector.scan_dead_letters(queue, matching, after, order)) as scan:
            found = ((position_of(message_id), letter) for message_id, letter in scan)
            if search is not None:
                found = (
                    (at, it if it and search.matches(it.envelope) else None) for at, it in found
                )
            return _page(found, size, held, after)

    def count_scheduled(self, queue: str) -> Count:
        """The jobs due later on the queue's topic, counted in the first SCAN_PER_PAGE read."""
        return _counted(self.scheduled(queue, None, SCAN_PER_PAGE))

    def count_retries(self, queue: str) -> Count:
        """The jobs on the retry topic: every message there is one (the broker counts them)."""
        return Count(self.held(queue, "retry"), complete=True)

    def count_dead(self, queue: str, matching: DeadLetterFilter) -> Count:
        """The dead letters `matching` picks; with filters, counted in the first SCAN_PER_PAGE
        read."""
        if matching == DeadLetterFilter():
            return Count(self.inspector.dead_count(queue), complete=True)
        return _counted(self.dead(queue, matching, None, SCAN_PER_PAGE, order="oldest"))

    def message(self, queue: str, where: Where, position: Position) -> FoundMessage | None:
        """The message at `position` on one of the queue's topics; None when there is none."""
        topic, subscription = self._topic(queue, where)
        inspector = self.inspector
        topic = partition_holding(inspector.admin, topic, position) or topic
        cursor = subscription_cursor(inspector.admin, topic, subscription)
        if cursor is None:
            return None
        message = read_at(
            inspector.admin,
            inspector.client,
            self.settings.service_url,
            topic,
            position,
            inspector.crypto,
        )
        if message is None:
            return None
        held = not cursor.is_acked(position)
        if where == "dead":
            letter = read_dead_letter(message, inspector.schemas)
            return FoundMessage(queue, where, position_text(position), held, None, letter)
        job = self._job(queue, where, message)
        return FoundMessage(queue, where, job.position, held, job, None)

    # -- inside ------------------------------------------------------------------------------

    def _jobs(
        self,
        queue: str,
        where: Where,
        after: Position | None,
        size: int,
        keep: Callable[[JobMessage], bool],
        search: JobSearch | None = None,
        start: Position | None = None,
    ) -> Page[JobMessage]:
        if search is not None:
            listed = keep
            keep = lambda job: listed(job) and search.matches(job.envelope)  # noqa: E731
        topic, subscription = self._topic(queue, where)
        inspector = self.inspector
        held = self._held(topic, subscription)
        messages = read_backlog(
            inspector.admin,
            inspector.client,
            self.settings.service_url,
            topic,
            subscription,
            max(after, start) if after is not None and start is not None else (after or start),
            inspector.crypto,
        )
        with closing(messages):  # closes the reader when the page is full
            found = (
                (position_of(message.message_id()), self._job(queue, where, message))
                for message in messages
            )
            return _page(((at, job if keep(job) else None) for at, job in found), size, held, after)

    def _job(self, queue: str, where: Where, message: pulsar.Message) -> JobMessage:
        envelope = self.inspector.envelope_of(message)
        return JobMessage(
            queue=queue,
            where=where,
            position=position_text(position_of(message.message_id())),
            published_at=datetime.fromtimestamp(message.publish_timestamp() / 1000, tz=UTC),
            due_at=due_time(message, envelope),
            envelope=envelope,
            size=len(message.data()),
            unreadable="" if envelope is not None else unreadable_why(message),
        )

    def _topic(self, queue: str, where: Where) -> tuple[str, str]:
        topics = topics_for(self.settings, queue)
        if where == "dead":
            return topics.dead, DEAD_LETTER_SUBSCRIPTION
        return (topics.jobs if where == "jobs" else topics.retry), self.settings.subscription

    def held(self, queue: str, where: Where) -> int:
        """How many messages the subscription holds on one of the queue's topics."""
        return self._held(*self._topic(queue, where))

    def _held(self, topic: str, subscription: str) -> int:
        try:
            stats = self.inspector.admin.summed_stats(topic)
        except NotFound:
            return 0
        return int(subscription_of(stats, subscription).get("msgBacklog", 0))


def is_retry(job: JobMessage) -> bool:
    """Every job the retry topic holds waits there to run again (a parked durable job keeps its
    first attempt and snoozed none: it must be listed too)."""
    return job.envelope is not None


def _counted(page: Page[T]) -> Count:
    return Count(page.matched, complete=page.next_after is None)


def _page(
    found: Iterable[tuple[Position, T | None]], size: int, held: int, after: Position | None
) -> Page[T]:
    """Read until `size` items are kept (None: read, not kept) or SCAN_PER_PAGE messages are
    read."""
    items: list[T] = []
    scanned = 0
    next_after: str | None = None
    for position, item in found:
        scanned += 1
        if item is not None:
            items.append(item)
        if len(items) == size or scanned == SCAN_PER_PAGE:
            next_after = position_text(position)
            break
    start = position_text(after) if after is not None else None
    return Page(tuple(items), len(items), scanned, held, start, next_after)
