"""The periodic-job scheduler: run as many as you like, exactly one enqueues each tick.

Leadership: every scheduler asks for an exclusive producer on its scope's leader topic
(WaitForExclusive). The scope is a digest of the app's schedules (scope.py): the replicas of an
app share it, apps with other schedules in the namespace have their own. The broker grants it to
one process, queues the others, and passes it on the moment the leader's connection drops, a
crash included.

Exactly once per tick: the leader publishes a schedule's ticks through a producer named after
the schedule's ticks (scope.py), with the tick's time in ms as sequence id, to a queue topic with
de-duplication on. The broker drops a tick at or before the last one it stored for that name, so
a new leader cannot publish a tick twice; and the broker tells it where the last leader stopped
(the producer's last sequence id), so it knows which ticks were missed. The broker grants a
producer name to one connection at a time: a schedule whose producer another scheduler holds
(another app that declares it too) is left to that one, and taken over when it lets go.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType

import pulsar
import structlog

from pulsarjobs.clock import Clock, utc_now
from pulsarjobs.errors import PulsarJobsError
from pulsarjobs.logs import error_text
from pulsarjobs.scheduling.cron import Schedule
from pulsarjobs.scheduling.leader import scheduler_leader
from pulsarjobs.scheduling.scope import SchedulingApp, schedule_queue, schedules_scope, tick_keys
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.leadership import deduplicate, leadership
from pulsarjobs.transport.metrics_reports import MetricsWriter
from pulsarjobs.transport.schema_registry import pulsar_schema
from pulsarjobs.transport.topics import (
    cron_producer_name,
    scheduler_leader_topic,
    scheduler_ticks_topic,
    topics_for,
)
from pulsarjobs.wire.envelope import encode

log = structlog.get_logger("pulsarjobs.scheduler")

SCHEDULER_META = "pulsarjobs-scheduler"
RETRY_SECONDS = 2.0


def tick_sequence(tick: datetime) -> int:
    return int(tick.timestamp() * 1000)


def tick_from_sequence(sequence: int) -> datetime | None:
    return datetime.fromtimestamp(sequence / 1000, UTC) if sequence >= 0 else None


@dataclass(slots=True)
class Ticking:
    """A schedule the leader enqueues the ticks of: through `publisher`, all up to `done`."""

    schedule: Schedule
    publisher: pulsar.Producer
    done: datetime


class Scheduler:
    def __init__(
        self, app: SchedulingApp, *, name: str | None = None, clock: Clock = utc_now
    ) -> None:
        self.app = app
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.clock = clock
        self.stopping = threading.Event()
        self.leading = threading.Event()
        self.moved = time.monotonic()  # when its serving thread last went round (health.py)
        self._enqueueing = threading.Lock()  # held while a tick's job and record are written
        self._standing_behind: str | None = None  # the leader's address, once said
        self._held_elsewhere: set[str] = set()  # schedules another scheduler ticks, once said
        self.tick_keys = tick_keys(app)
        self.scope = schedules_scope(app)
        self.leader_topic = scheduler_leader_topic(app.settings, self.scope)
        self.ticks_topic = scheduler_ticks_topic(app.settings)

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT."""

        def on_signal(_signum: int, _frame: FrameType | None) -> None:
            self.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        server = threading.Thread(target=self.serve, name="pulsarjobs-scheduler", daemon=True)
        server.start()
        while server.is_alive() and not self.stopping.wait(0.5):
            pass
        self.app.close()  # also ends a wait for leadership
        server.join(10)
        log.info("scheduler stopped", scheduler=self.name)

    @property
    def serving(self) -> bool:
        return not self.stopping.is_set()

    @property
    def is_leading(self) -> bool:
        return self.leading.is_set()

    def stop(self) -> None:
        """Stop leading. A tick being enqueued is finished first, so that closing the app next
        cannot store its job without its record (`cron list` would then lag a tick behind)."""
        self.stopping.set()
        with self._enqueueing:
            pass

    def serve(self) -> None:
        """Wait for leadership, lead until it is lost, again, until stopped."""
        if not self.app.schedules:
            log.warning("no schedules are declared in this app; nothing to do")
        while not self.stopping.is_set():
            self.moved = time.monotonic()
            try:
                self._serve_once()
            except pulsar.Timeout as exc:  # no leadership within the client's operation timeout
                if not self.stopping.is_set():
                    self._stand_by(exc)
            except Exception as exc:
                if self.stopping.is_set():
                    break
                log.warning("scheduler lost the broker; retrying", error=error_text(exc))
                self.stopping.wait(RETRY_SECONDS)
            finally:
                self.leading.clear()

    def _stand_by(self, timeout: Exception) -> None:
        """A wait for leadership timed out: while another scheduler leads, that is standing by,
        said once per leader; with no leader, the broker is what failed."""
        try:
            with Admin.of(self.app.settings, timeout=5.0) as admin:
                leader = scheduler_leader(admin, self.app.settings, self.scope)
        except PulsarJobsError as exc:
            leader, timeout = None, exc
        if leader is None:
            log.warning("scheduler lost the broker; retrying", error=error_text(timeout))
            self.stopping.wait(RETRY_SECONDS)
            return
        if leader.address != self._standing_behind:
            self._standing_behind = leader.address
            since = leader.connected_since.isoformat() if leader.connected_since else None
            log.info("standing by: another scheduler leads these schedules", scheduler=self.name,
                     scope=self.scope, leader=leader.address, leading_since=since)  # fmt: skip

    def _serve_once(self) -> None:
        client = self.app.connection.client
        with leadership(client, self.leader_topic) as leader:
            log.info("leading: this scheduler enqueues the ticks", scheduler=self.name,
                     scope=self.scope)  # fmt: skip
            self.leading.set()
            self._standing_behind = None
            # The leader writes the queues' sizes each minute, workers or not (Metrics page)
            sizes = MetricsWriter.start(
                f"scheduler {self.name}",
                self.app.settings,
                self.app.connection,
                self.app.declared_queues(),
            )
            try:
                self._lead(leader)
            finally:
                if sizes is not None:
                    sizes.stop()

    def _lead(self, leader: pulsar.Producer) -> None:
        # Its producers are made under the connection's lock (`made`): `run` closes the
        # connection as it stops, and a client closed under a call may never answer it. The
        # wait for leadership stays outside it, since that close is what ends the wait.
        ticks = self.app.connection.made(lambda client: client.create_producer(self.ticks_topic))
        ticking: dict[str, Ticking] = {}
        untaken = dict.fromkeys(self.app.schedules, 0.0)  # when to try for them (monotonic)
        prepared: set[str] = set()  # the queue topics made ready for ticks
        try:
            while not self.stopping.is_set() and leader.is_connected():
                self.moved = time.monotonic()
                self._take(ticks, untaken, ticking, prepared)
                now = self.clock()
                for held in ticking.values():
                    for tick in held.schedule.ticks(held.done, now):
                        self._publish(held.schedule, held.publisher, ticks, tick)
                    held.done = max(held.done, now)
                upcoming = [held.schedule.next_tick(held.done) for held in ticking.values()]
                wait = (min(upcoming) - self.clock()).total_seconds() if upcoming else 1.0
                self.stopping.wait(min(max(wait, 0.0), 1.0))
        finally:
            ticks.close()
            for held in ticking.values():
                held.publisher.close()

    def _take(
        self,
        ticks: pulsar.Producer,
        untaken: dict[str, float],
        ticking: dict[str, Ticking],
        prepared: set[str],
    ) -> None:
        """Take the schedules no other scheduler ticks, each with the ticks it missed (the
        broker says which it enqueued last); try again later for the others."""
        for name, when in list(untaken.items()):
            if time.monotonic() < when or self.stopping.is_set():
                continue
            schedule = self.app.schedules[name]
            publisher = self._tick_publisher(schedule, prepared)
            if publisher is None:
                untaken[name] = time.monotonic() + RETRY_SECONDS
                continue
            del untaken[name]
            now = self.clock()
            previous = tick_from_sequence(publisher.last_sequence_id())
            for tick in schedule.due(previous, now):
                self._publish(schedule, publisher, ticks, tick)
            ticking[name] = Ticking(schedule, publisher, max(previous, now) if previous else now)

    def _tick_publisher(self, schedule: Schedule, prepared: set[str]) -> pulsar.Producer | None:
        """The producer of the schedule's ticks; None while another scheduler holds it."""
        topic = topics_for(self.app.settings, schedule_queue(self.app, schedule)).jobs
        if topic not in prepared:
            self.app.connection.prepare_queue(topic, self.app.settings.subscription)
            with Admin.of(self.app.settings) as admin:
                deduplicate(admin, topic, self.stopping)
            prepared.add(topic)
        producer_name = cron_producer_name(self.tick_keys[schedule.name])
        try:
            producer = self.app.connection.made(lambda client: client.create_producer(
                topic, producer_name=producer_name, schema=pulsar_schema(), batching_enabled=False
            ))  # fmt: skip
        except pulsar.ProducerBusy:
            if schedule.name not in self._held_elsewhere:
                self._held_elsewhere.add(schedule.name)
                log.info(
                    "another scheduler enqueues this schedule's ticks; leaving them to it",
                    scheduler=self.name, schedule=schedule.name, producer=producer_name,
                )  # fmt: skip
            return None
        self._held_elsewhere.discard(schedule.name)
        return producer

    def _publish(
        self, schedule: Schedule, publisher: pulsar.Producer, ticks: pulsar.Producer, tick: datetime
    ) -> None:
        call = schedule.call(tick)
        call = call.with_options(meta={**call.meta, SCHEDULER_META: self.name})
        envelope = self.app.hooks.before_enqueue(self.app.envelope(call))
        record = {"tick": tick.isoformat(), "job_id": envelope.id, "scheduler": self.name,
                  "schedule": schedule.name}  # fmt: skip
        with self._enqueueing:
            # The key keeps a schedule's ticks on one partition of a partitioned queue: the
            # broker de-duplicates a sequence per partition.
            stored = publisher.send(
                encode(envelope), sequence_id=tick_sequence(tick), partition_key=schedule.name
            )
            self.app.job_index.note((envelope.id, envelope.queue, publisher.topic(), stored))
            ticks.send(json.dumps(record).encode(), partition_key=self.tick_keys[schedule.name])
        self.app.hooks.emit("after_enqueue", envelope)
        log.info("tick enqueued", schedule=schedule.name, tick=tick.isoformat(), job_id=envelope.id)


def last_ticks(client: pulsar.Client, settings: Settings) -> dict[str, dict[str, str]]:
    """The last tick each schedule enqueued, as the scheduler recorded it: its tick, job id,
    scheduler and schedule, by the name of the schedule's ticks (scope.py; by schedule name
    alone for the ticks of schedulers before scopes)."""
    reader = client.create_reader(
        scheduler_ticks_topic(settings), pulsar.MessageId.earliest, is_read_compacted=True
    )
    found: dict[str, dict[str, str]] = {}
    try:
        while reader.has_message_available():
            message = reader.read_next(timeout_millis=5_000)
            found[message.partition_key()] = json.loads(message.data())
    finally:
        reader.close()
    return found
