"""The Inspector: what is on the broker, as operators ask about it — queues, topics, dead
letters, workers — read over the admin REST API and with readers, never by consuming.

Everything it returns is a frozen dataclass, so the CLI, `--json` and a future dashboard show
the same numbers.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pulsar

from pulsarjobs.clock import utc_now
from pulsarjobs.errors import NotFound
from pulsarjobs.flow.rates import rate_limit
from pulsarjobs.operations.dead_letters import (
    DeadLetter,
    DeadLetterFilter,
    pick_dead_letter,
    writer_schema,
)
from pulsarjobs.operations.durable_steps import DurableStep, read_steps, read_waits
from pulsarjobs.operations.fair_keys import FairKeys, count_keys, lane_topics
from pulsarjobs.operations.outbox_lag import OutboxStatus, outbox_status
from pulsarjobs.operations.pauses import Pause, paused_queues
from pulsarjobs.operations.pending_groups import PendingGroups, pending_groups
from pulsarjobs.operations.retention import dead_retention
from pulsarjobs.operations.statuses import QueueStats as QueueStats
from pulsarjobs.operations.statuses import WorkerStatus as WorkerStatus
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.backlog import Position, read_backlog
from pulsarjobs.transport.backlog_newest import Order, read_backlog_ordered
from pulsarjobs.transport.client_log import silent_logger
from pulsarjobs.transport.closing import Closing
from pulsarjobs.transport.connection import Connection, client_errors, crypto_key_reader, probe
from pulsarjobs.transport.job_index import JobIndex
from pulsarjobs.transport.schema_registry import WriterSchemas
from pulsarjobs.transport.topic_stats import (
    TopicInfo,
    TopicStats,
    consumer_count,
    subscription_of,
    topic_stats_of,
)
from pulsarjobs.transport.topics import (
    DEAD_LETTER_SUBSCRIPTION,
    FAIR_LANE,
    GROUPS_SUFFIX,
    QUEUE_NAME,
    full_topic_name,
    topic_kind,
    topics_for,
    without_partition,
    workers_topic,
)
from pulsarjobs.wire.envelope import Envelope, EnvelopeError, decode
from pulsarjobs.wire.heartbeat import Heartbeat, read_heartbeats
from pulsarjobs.workflows.batch_state import BatchProgress, read_table
from pulsarjobs.workflows.signals import Waiting

ALL = DeadLetterFilter()  # picks every dead letter
SCAN_LIMIT = 10_000  # messages read per topic to tell scheduled jobs from waiting ones
FORGET_GONE_AFTER = timedelta(days=1)  # a crashed worker is news for a day, then history


@dataclass
class _Schedule:
    """What a read of a backlog found."""

    scheduled: int = 0
    oldest_due: datetime | None = None
    complete: bool = True


class Inspector(Closing):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.admin = Admin.of(settings)
        self._connection: Connection | None = None
        self._opening = threading.Lock()  # a dashboard reads from several threads
        self.schemas = WriterSchemas(settings)  # writer schemas, looked up once each
        self.crypto = crypto_key_reader(settings)  # end-to-end encrypted jobs, with the key
        self.job_index = JobIndex(lambda: self.connection)  # for the jobs it moves

    def close(self) -> None:
        self.admin.close()
        self.job_index.close()
        if self._connection is not None:
            self._connection.close()

    @property
    def connection(self) -> Connection:
        """The binary-protocol connection, opened at first use, its client's logs silenced."""
        with self._opening:
            if self._connection is None:
                probe(self.settings.service_url)
                self._connection = Connection(self.settings, client_logger=silent_logger())
            return self._connection

    @property
    def client(self) -> pulsar.Client:
        return self.connection.client

    # -- topics ------------------------------------------------------------------------------

    def full_name(self, name: str) -> str:
        """A topic named within the namespace, or in full."""
        return full_topic_name(self.settings, name)

    def topics(self) -> list[TopicInfo]:
        namespace = self.settings.full_namespace
        partitioned = self.admin.partitioned_topics(namespace)
        plain = [
            topic
            for topic in self.admin.topics(namespace)
            if not any(topic.startswith(f"{parent}-partition-") for parent in partitioned)
        ]
        infos = [self._topic_info(topic, 0) for topic in plain]
        infos += [self._topic_info(topic, self.admin.partitions(topic)) for topic in partitioned]
        return sorted(infos, key=lambda info: info.name)

    def _topic_info(self, topic: str, partitions: int) -> TopicInfo:
        name = topic.rsplit("/", 1)[-1]
        return TopicInfo(name, topic, partitions, topic_kind(name))

    def topic_stats(self, name: str) -> TopicStats:
        topic = self.full_name(name)
        try:
            partitions = self.admin.partitions(topic)
            raw = self.admin.stats(topic, partitioned=partitions > 0)
        except NotFound:
            raise NotFound(f"There is no topic {topic}.") from None
        return topic_stats_of(topic, partitions, raw)

    # -- queues ------------------------------------------------------------------------------

    def queue_names(self) -> list[str]:
        """Queues with a topic of their own (or only fair lanes, or only grouped jobs' members),
        or only dead letters left."""
        dead_suffix = f"-{self.settings.subscription}-DLQ"
        namespace = self.settings.full_namespace
        names = set()
        for topic in self.admin.topics(namespace) + self.admin.partitioned_topics(namespace):
            name = without_partition(topic.rsplit("/", 1)[-1]).removesuffix(dead_suffix)
            name = FAIR_LANE.sub("", name.removesuffix(GROUPS_SUFFIX))  # lanes, members only
            if QUEUE_NAME.match(name):
                names.add(name)
        return sorted(names)

    def queues(
        self, scan_limit: int = SCAN_LIMIT, *, read_schedule: bool = True
    ) -> list[QueueStats]:
        names = self.queue_names()
        paused = self.paused_queues() if names else {}
        return [self.queue(name, scan_limit, paused=name in paused, read_schedule=read_schedule)
                for name in names]  # fmt: skip

    def paused_queues(self) -> dict[str, Pause]:
        return paused_queues(self.connection)

    def batches(self) -> list[BatchProgress]:
        """Every batch as workers last stored it, the newest first (batch_state.py)."""
        return read_table(self.connection).all()

    def batch(self, batch_id: str) -> BatchProgress | None:
        return read_table(self.connection).progress(batch_id)

    def steps(self, job_id: str) -> list[DurableStep]:
        """A durable job's stored steps and sleeps, in the order they were stored (read from
        the steps topic: durable_steps.py); none for a job that stored none."""
        return read_steps(self.admin, self.client, self.settings, job_id, utc_now())

    def waiting(self) -> list[Waiting]:
        """The durable jobs waiting for a signal now, by key: `Waiting(job_id, name, key, job,
        deadline)`, the soonest to time out first."""
        return read_waits(self.admin, self.client, self.settings)

    def queue(
        self, name: str, scan_limit: int = SCAN_LIMIT, *, paused: bool | None = None,
        read_schedule: bool = True,
    ) -> QueueStats:  # fmt: skip
        """A queue's stats, reading up to `scan_limit` messages per topic to tell scheduled jobs
        from waiting ones (not `read_schedule`: the caller counts them: ReadyWork); `paused` when
        the caller knows it already."""
        topics = topics_for(self.settings, name)
        lanes = lane_topics(self.admin, self.settings, name)  # a fair queue's (fair_keys.py)
        every = [self._stats(t) for t in (topics.jobs, topics.retry, topics.ordered, *lanes)]
        subscription = self.settings.subscription
        parts = [subscription_of(stats, subscription) for stats in every]
        backlog = sum(int(part.get("msgBacklog", 0)) for part in parts)
        in_flight = sum(int(part.get("unackedMessages", 0)) for part in parts)
        schedule = (self._schedule([topics.jobs, topics.retry, *lanes], backlog, scan_limit)
                    if read_schedule else _Schedule(complete=False))  # fmt: skip
        if not schedule.complete:  # the broker knows of those it has read ahead, at least
            delayed = sum(int(part.get("msgDelayed", 0)) for part in parts)
            schedule.scheduled = max(schedule.scheduled, delayed)
        oldest = schedule.oldest_due
        return QueueStats(
            queue=name,
            waiting=max(0, backlog - schedule.scheduled - in_flight),
            scheduled=schedule.scheduled,
            in_flight=in_flight,
            dead=self.dead_count(name),
            rate_in=sum(float(stats.get("msgRateIn", 0.0)) for stats in every),
            rate_out=sum(float(part.get("messageAckRate", 0.0)) for part in parts),
            consumers=consumer_count(parts[0]),
            oldest_seconds=(utc_now() - oldest).total_seconds() if oldest else None,
            exact=schedule.complete,
            paused=name in self.paused_queues() if paused is None else paused,
            rate_limit=rate_limit(self.admin, topics),
            dead_retention=dead_retention(self.admin, topics),
            grouping=self._grouping(topics.groups, scan_limit),
        )

    def _grouping(self, topic: str, scan_limit: int) -> PendingGroups:
        members = subscription_of(self._stats(topic), self.settings.subscription)
        backlog = lambda: self._backlog(topic, self.settings.subscription)  # noqa: E731
        return pending_groups(int(members.get("msgBacklog", 0)), backlog, self.envelope_of,
                              scan_limit)  # fmt: skip

    def fair_keys(self, name: str, scan_limit: int = SCAN_LIMIT) -> FairKeys | None:
        """A fair queue's keys with jobs waiting, and its lanes' backlogs; None: not fair."""
        subscription = self.settings.subscription
        lanes = {topic: int(subscription_of(self._stats(topic), subscription).get("msgBacklog", 0))
                 for topic in lane_topics(self.admin, self.settings, name)}  # fmt: skip
        if not lanes:
            return None
        backlog = functools.partial(self._backlog, subscription=subscription)
        return count_keys(name, lanes, backlog, self.envelope_of, scan_limit)

    def _schedule(self, topics: list[str], backlog: int, scan_limit: int) -> _Schedule:
        """Read the backlogs: the broker counts delayed messages only once a consumer made it
        read them, so with no worker running it would call every scheduled job waiting."""
        schedule = _Schedule()
        if backlog == 0:
            return schedule
        now = utc_now()
        for topic in topics:
            for read, message in enumerate(self._backlog(topic, self.settings.subscription)):
                counting = read < scan_limit
                if not counting:
                    schedule.complete = False
                    # Past the count's limit, read on (up to SCAN_LIMIT) only until a due job
                    # is found: jobs scheduled ahead of it would leave "oldest" blank.
                    if schedule.oldest_due is not None or read >= SCAN_LIMIT:
                        break
                due = due_time(message, self.envelope_of(message))
                if due > now:
                    schedule.scheduled += 1 if counting else 0
                elif schedule.oldest_due is None or due < schedule.oldest_due:
                    schedule.oldest_due = due
        return schedule

    def envelope_of(self, message: pulsar.Message) -> Envelope | None:
        """The job a message holds; None for a message that is no job envelope."""
        try:
            return decode(message.data(), writer_schema(self.schemas, message))
        except EnvelopeError:
            return None

    def _stats(self, topic: str) -> dict[str, Any]:
        """A topic's stats, the partitions of a partitioned one summed; {} for no topic."""
        try:
            return self.admin.summed_stats(topic)
        except NotFound:
            return {}

    def _backlog(
        self, topic: str, subscription: str, after: Position | None = None
    ) -> Generator[pulsar.Message]:
        return read_backlog(
            self.admin,
            self.client,
            self.settings.service_url,
            topic,
            subscription,
            after,
            self.crypto,
        )

    # -- dead letters ------------------------------------------------------------------------

    def dead_count(self, queue: str) -> int:
        dead = self._stats(topics_for(self.settings, queue).dead)
        return int(subscription_of(dead, DEAD_LETTER_SUBSCRIPTION).get("msgBacklog", 0))

    def scan_dead_letters(
        self,
        queue: str,
        matching: DeadLetterFilter = ALL,
        after: Position | None = None,
        order: Order = "oldest",
    ) -> Generator[tuple[pulsar.MessageId, DeadLetter | None]]:
        """Every dead letter of a queue still held (after the position `after` in `order`),
        with its message id: the letter when `matching` picks it, else None."""
        topic = topics_for(self.settings, queue).dead
        url, subscription = self.settings.service_url, DEAD_LETTER_SUBSCRIPTION
        read = read_backlog_ordered
        for message in read(self.admin, self.client, url, topic, subscription, order, after,
                            self.crypto):  # fmt: skip
            yield message.message_id(), pick_dead_letter(message, self.schemas, matching)

    def dead_letters(
        self,
        queue: str,
        matching: DeadLetterFilter = ALL,
        limit: int | None = None,
        order: Order = "oldest",
    ) -> list[DeadLetter]:
        found: list[DeadLetter] = []
        for _, letter in self.scan_dead_letters(queue, matching, order=order):
            if letter is not None:
                found.append(letter)
                if len(found) == limit:
                    break
        return found

    def find_dead_letters(self, job_id: str, queue: str | None = None) -> list[DeadLetter]:
        """The dead letters of a job, in one queue or in all (a replayed job can die again)."""
        queues = [queue] if queue else self.queue_names()
        of_job = DeadLetterFilter(job_ids=frozenset({job_id}))
        return [letter for name in queues for letter in self.dead_letters(name, of_job)]

    # -- workers -----------------------------------------------------------------------------

    def workers(self, everyone: bool = False) -> list[WorkerStatus]:
        """Workers by their latest heartbeat; stopped and long-gone ones only for `everyone`."""
        heartbeats = [beat for beat in self._heartbeats() if beat.outbox is None]
        now = utc_now()
        statuses = [
            WorkerStatus(
                worker=beat.worker,
                state=beat.seen_at(now),
                host=beat.host,
                pid=beat.pid,
                subscription=beat.subscription,
                queues=beat.queues,
                concurrency=beat.concurrency,
                busy=beat.busy,
                processed=beat.processed,
                failed=beat.failed,
                rss_bytes=beat.rss_bytes,
                started_at=beat.started_at,
                last_seen=beat.sent_at,
                silent_seconds=max(0.0, (now - beat.sent_at).total_seconds()),
                running=beat.running,
                held_by_limit=beat.held_by_limit,
                ended=beat.ended,
            )
            for beat in heartbeats
        ]
        return sorted(
            (status for status in statuses if everyone or is_current(status)),
            key=lambda status: (status.state == "gone", status.worker),
        )

    def outbox(self) -> OutboxStatus | None:
        """The outbox's lag, as its relays' heartbeats tell it; None when no relay runs."""
        return outbox_status(self._heartbeats(), utc_now())

    def _heartbeats(self) -> list[Heartbeat]:
        """The latest heartbeat of every worker and outbox relay of the namespace."""
        topic = workers_topic(self.settings)
        if not self._stats(topic):
            return []  # none ever ran in this namespace
        with client_errors(self.settings.service_url, "reading worker heartbeats"):
            return list(read_heartbeats(self.client, topic).values())


def is_current(status: WorkerStatus) -> bool:
    if status.state == "stopped":
        return False
    return status.state != "gone" or status.silent_seconds < FORGET_GONE_AFTER.total_seconds()


def due_time(message: pulsar.Message, envelope: Envelope | None) -> datetime:
    """When a job is due: at its `run_at`, or once published. A message that is no job waits
    like one until a worker dead-letters it."""
    published = datetime.fromtimestamp(message.publish_timestamp() / 1000, tz=UTC)
    run_at = envelope.run_at if envelope is not None else None
    return max(published, run_at) if run_at is not None else published
