"""The worker's group collector: holds grouped jobs' members until their group is due, then
stores the group as one job of its queue and only then acknowledges its members.

It reads the group topics (`<queue>-groups`) of the queues the worker serves that have a
grouped job, on one Key_Shared subscription: the broker gives each group key to one worker at
a time, so a key's members meet in one buffer. Members wait unacknowledged: a worker that dies
leaves them to the worker the broker gives their key next. A member runs no code here, so its
redeliveries say nothing of it — the subscription has no dead-letter policy and nothing is
lost; a group's job has the queue's own crash backstop (worker/feed.py) and retries.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, wait
from datetime import UTC, datetime

import pulsar
import structlog

from pulsarjobs.app_view import AppView
from pulsarjobs.grouping.buffer import GroupBuffer, PendingGroup
from pulsarjobs.grouping.job import GroupedJob
from pulsarjobs.grouping.members import group_envelope, member_of
from pulsarjobs.grouping.options import UNGROUPED, GroupOptions
from pulsarjobs.logs import error_text
from pulsarjobs.operations.dead_letters import dead_letter_properties
from pulsarjobs.transport.connection import crypto_key_reader
from pulsarjobs.transport.schema_registry import NOT_LOOKED_UP, WriterSchemas, pulsar_schema
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import Envelope, EnvelopeError, decode

log = structlog.get_logger("pulsarjobs.grouping")

RECEIVER_QUEUE = 1_000  # members fetched ahead; those held in groups are beyond it
LOOK_MS = 50  # due groups are looked at this often at least: grace and max_delay are kept to it
STOP_WAIT_S = 10.0  # for groups being stored as the worker stops
RECENTLY_STORED = 100_000  # members' message ids remembered once their group is stored


def grouped_queues(app: AppView, queues: Sequence[str]) -> list[str]:
    """The queues of `queues` with a grouped job declared."""
    grouped = {job.queue for job in app.jobs.values() if isinstance(job, GroupedJob)}
    return [queue for queue in queues if queue in grouped]


def options_of(app: AppView, type_: str) -> GroupOptions:
    job = app.jobs.get(type_)
    return job.group if isinstance(job, GroupedJob) else UNGROUPED


class GroupCollector:
    def __init__(
        self,
        app: AppView,
        queues: Sequence[str],
        subscription: str,
        name: str,
        cancelled: Mapping[str, datetime],
    ) -> None:
        self.app = app
        self.cancelled = cancelled  # job id -> cancelled at: the worker's, followed as it grows
        self.topics = {queue: topics_for(app.settings, queue) for queue in queues}
        self.buffer = GroupBuffer(lambda type_: options_of(app, type_))
        self.schemas = WriterSchemas(app.settings)
        self._storing: set[Future[None]] = set()  # groups sent, not yet stored
        # Message ids of the members held (in a group or being stored), and of those stored
        # lately, the latest last: the broker delivers a member again after a reconnection,
        # and a copy of one held or stored here makes no second run.
        self._held: set[str] = set()
        self._stored: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._consumer = app.connection.client.subscribe(
            [topics.groups for topics in self.topics.values()],
            subscription,
            consumer_type=pulsar.ConsumerType.KeyShared,
            schema=pulsar_schema(),
            receiver_queue_size=RECEIVER_QUEUE,
            consumer_name=name,
            initial_position=pulsar.InitialPosition.Earliest,
            crypto_key_reader=crypto_key_reader(app.settings),
        )
        self._thread = threading.Thread(target=self._run, name="pulsarjobs-groups", daemon=True)

    @classmethod
    def start(
        cls,
        app: AppView,
        queues: Sequence[str],
        subscription: str,
        name: str,
        cancelled: Mapping[str, datetime],
    ) -> GroupCollector | None:
        """A running collector of the grouped jobs of `queues`; None if they have none."""
        grouped = grouped_queues(app, queues)
        if not grouped:
            return None
        collector = cls(app, grouped, subscription, name, cancelled)
        collector._thread.start()
        return collector

    def stop(self) -> None:
        """Stop collecting; groups being stored are waited for, and the members still held go
        back, unacknowledged, to the workers that get their keys next."""
        self._stopping.set()
        self._thread.join()
        with self._lock:
            storing = list(self._storing)
        wait(storing, timeout=STOP_WAIT_S)
        with contextlib.suppress(Exception):
            self._consumer.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            due = self.buffer.next_due()
            left_ms = LOOK_MS if due is None else (due - self.app.clock()).total_seconds() * 1000
            try:  # a round: the members already fetched, up to a receiver queue's worth
                message, held = self._receive(max(1, min(int(left_ms), LOOK_MS))), 0
                while message is not None:
                    self._hold(message)
                    held += 1
                    message = self._receive(1) if held < RECEIVER_QUEUE else None
            except Exception as exc:
                if self._stopping.is_set():
                    return
                log.warning("could not receive group members", error=error_text(exc))
                self._stopping.wait(1.0)
            for group in self.buffer.take_due(self.app.clock()):
                self._store(group)

    def _receive(self, timeout_ms: int) -> pulsar.Message | None:
        try:
            return self._consumer.receive(timeout_millis=timeout_ms)
        except pulsar.Timeout:
            return None

    def _hold(self, message: pulsar.Message) -> None:
        message_id = str(message.message_id())
        with self._lock:
            if message_id in self._held:  # acknowledged with its group
                return
            if message_id in self._stored:  # its group is stored: acknowledged again
                self._consumer.acknowledge(message)
                return
            self._held.add(message_id)
        try:
            key = WriterSchemas.key(message.topic_name(), message.schema_version())
            schema = None
            if key is not None and (schema := self.schemas.known.get(key, NOT_LOOKED_UP)) is (
                NOT_LOOKED_UP
            ):
                schema = self.schemas.fetch(key)  # once per topic and version
            envelope = decode(message.data(), schema)
        except Exception as exc:
            with self._lock:
                self._held.discard(message_id)
            if isinstance(exc, EnvelopeError):
                self._dead_letter(message, exc)
            else:  # its writer's schema could not be read: later
                log.warning("could not read a member's schema; it comes back",
                            error=error_text(exc))  # fmt: skip
                self._consumer.negative_acknowledge(message)
            return
        enqueued = datetime.fromtimestamp(message.publish_timestamp() / 1000, UTC)
        member = member_of(envelope, message.partition_key())
        full = self.buffer.add(envelope.type, envelope.queue, member, enqueued,
                               self.app.clock(), message)  # fmt: skip
        if full is not None:
            self._store(full)

    def _store(self, group: PendingGroup) -> None:
        """Publish the group's job; acknowledge its members once the broker has it. Cancelled
        members (`app.cancel`, cancel by group key) are left out, and acknowledged with it."""
        job = self.app.jobs.get(group.type)
        members = [member for member in group.members if member.id not in self.cancelled]
        if not members:  # nothing left to run: only the acknowledgements
            nothing: Future[None] = Future()
            nothing.set_result(None)
            self._settle(group, None, nothing)
            return
        envelope = group_envelope(job, group.type, group.queue, members, self.app.clock())
        try:
            stored = self.app.publish_envelope(envelope, self.topics[group.queue].jobs)
        except Exception as exc:
            stored = Future()
            stored.set_exception(exc)
        with self._lock:
            self._storing.add(stored)
        stored.add_done_callback(lambda done: self._settle(group, envelope, done))

    def _settle(self, group: PendingGroup, envelope: Envelope | None, stored: Future[None]) -> None:
        consumer, failure = self._consumer, stored.exception()
        ids = [str(message.message_id()) for message in group.held]
        with self._lock:
            self._storing.discard(stored)
            self._held.difference_update(ids)
            if failure is None:
                self._stored.update(dict.fromkeys(ids))
                while len(self._stored) > RECENTLY_STORED:
                    self._stored.popitem(last=False)
        try:
            if failure is None:
                for message in group.held:
                    consumer.acknowledge(message)
                if self.app.job_index.writes():  # its job carries them now, under its own id
                    for member in group.members:
                        self.app.job_index.settled(member.id)
                log.debug("group stored", job_id=envelope and envelope.id, job_type=group.type,
                          key=group.key, members=len(group.members))  # fmt: skip
            else:
                log.warning("could not store a group; its members come back", job_type=group.type,
                            key=group.key, error=error_text(failure))  # fmt: skip
                for message in group.held:
                    consumer.negative_acknowledge(message)
        except Exception as exc:  # closed meanwhile: the broker gives them out again
            log.warning("could not settle a group's members", error=error_text(exc))

    def _dead_letter(self, message: pulsar.Message, exc: EnvelopeError) -> None:
        """A member that is no job goes to its queue's dead letters as it came."""
        message_id = str(message.message_id())
        stand_in = Envelope(id=message_id, type="", queue="")
        topics = next(t for t in self.topics.values() if t.groups == message.topic_name())
        properties = dead_letter_properties(
            stand_in, f"Undecodable: {exc}", message.topic_name(), message_id
        )
        try:
            self.app.connection.publish(topics.dead, message.data(), properties=properties).result()
            self._consumer.acknowledge(message)
        except Exception as failure:
            log.warning("could not dead-letter a member", error=error_text(failure))
            self._consumer.negative_acknowledge(message)
