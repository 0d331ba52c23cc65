"""The periodic-job scheduler: run as many as you like, exactly one enqueues each tick.

Leadership: every scheduler asks for an exclusive producer on the namespace's leader topic
(WaitForExclusive). The broker grants it to one process, queues the others, and passes it on the
moment the leader's connection drops, a crash included.

Exactly once per tick: the leader publishes a schedule's ticks through a producer named after
the schedule, with the tick's time in ms as sequence id, to a queue topic with de-duplication on.
The broker drops a tick at or before the last one it stored for that name, so a new leader cannot
publish a tick twice; and the broker tells it where the last leader stopped (the producer's last
sequence id), so it knows which ticks were missed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import Protocol

import pulsar
import structlog

from pulsarjobs.app_view import AppView
from pulsarjobs.clock import Clock, utc_now
from pulsarjobs.errors import BrokerError, PulsarJobsError
from pulsarjobs.logs import error_text
from pulsarjobs.scheduling.cron import Schedule
from pulsarjobs.scheduling.leader import scheduler_leader
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.schema_registry import pulsar_schema
from pulsarjobs.transport.topics import scheduler_leader_topic, scheduler_ticks_topic, topics_for
from pulsarjobs.wire.envelope import encode

log = structlog.get_logger("pulsarjobs.scheduler")

SCHEDULER_META = "pulsarjobs-scheduler"
RETRY_SECONDS = 2.0


def tick_sequence(tick: datetime) -> int:
    return int(tick.timestamp() * 1000)


def tick_from_sequence(sequence: int) -> datetime | None:
    return datetime.fromtimestamp(sequence / 1000, UTC) if sequence >= 0 else None


class SchedulingApp(AppView, Protocol):
    """What the scheduler and the schedules' status use of the App beyond what the worker does."""

    @property
    def schedules(self) -> dict[str, Schedule]: ...


class Scheduler:
    def __init__(
        self, app: SchedulingApp, *, name: str | None = None, clock: Clock = utc_now
    ) -> None:
        self.app = app
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.clock = clock
        self.stopping = threading.Event()
        self.leading = threading.Event()
        self._enqueueing = threading.Lock()  # held while a tick's job and record are written
        self._standing_behind: str | None = None  # the leader's address, once said
        self.leader_topic = scheduler_leader_topic(app.settings)
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
                leader = scheduler_leader(admin, self.app.settings)
        except PulsarJobsError as exc:
            leader, timeout = None, exc
        if leader is None:
            log.warning("scheduler lost the broker; retrying", error=error_text(timeout))
            self.stopping.wait(RETRY_SECONDS)
            return
        if leader.address != self._standing_behind:
            self._standing_behind = leader.address
            since = leader.connected_since.isoformat() if leader.connected_since else None
            log.info("standing by: another scheduler leads this namespace's schedules",
                     scheduler=self.name, leader=leader.address, leading_since=since)  # fmt: skip

    def _serve_once(self) -> None:
        client = self.app.connection.client
        leader = client.create_producer(
            self.leader_topic,
            producer_name=None,
            access_mode=pulsar.ProducerAccessMode.WaitForExclusive,
        )
        try:
            log.info("leading: this scheduler enqueues the ticks", scheduler=self.name)
            self.leading.set()
            self._standing_behind = None
            self._lead(client, leader)
        finally:
            leader.close()

    def _lead(self, client: pulsar.Client, leader: pulsar.Producer) -> None:
        publishers = {
            name: self._tick_publisher(client, s) for name, s in self.app.schedules.items()
        }
        ticks = client.create_producer(self.ticks_topic)
        last: dict[str, datetime] = {}
        now = self.clock()
        for name, schedule in self.app.schedules.items():
            previous = tick_from_sequence(publishers[name].last_sequence_id())
            for tick in schedule.due(previous, now):
                self._publish(schedule, publishers[name], ticks, tick)
            last[name] = max(previous, now) if previous else now
        try:
            while not self.stopping.is_set() and leader.is_connected():
                now = self.clock()
                for name, schedule in self.app.schedules.items():
                    for tick in schedule.ticks(last[name], now):
                        self._publish(schedule, publishers[name], ticks, tick)
                    last[name] = max(last[name], now)
                upcoming = [s.next_tick(last[n]) for n, s in self.app.schedules.items()]
                wait = (min(upcoming) - self.clock()).total_seconds() if upcoming else 1.0
                self.stopping.wait(min(max(wait, 0.0), 1.0))
        finally:
            ticks.close()
            for publisher in publishers.values():
                publisher.close()

    def _tick_publisher(self, client: pulsar.Client, schedule: Schedule) -> pulsar.Producer:
        queue = self.app.envelope(schedule.call(self.clock())).queue
        topic = topics_for(self.app.settings, queue).jobs
        self.app.connection.prepare_queue(topic, self.app.settings.subscription)
        with Admin.of(self.app.settings) as admin:
            admin.enable_deduplication(topic)
            wait_for_deduplication(admin, topic, self.stopping)
        return client.create_producer(
            topic,
            producer_name=f"pulsarjobs-cron-{schedule.name}",
            schema=pulsar_schema(),
            batching_enabled=False,
        )

    def _publish(
        self, schedule: Schedule, publisher: pulsar.Producer, ticks: pulsar.Producer, tick: datetime
    ) -> None:
        call = schedule.call(tick)
        call = call.with_options(meta={**call.meta, SCHEDULER_META: self.name})
        envelope = self.app.hooks.before_enqueue(self.app.envelope(call))
        record = {"tick": tick.isoformat(), "job_id": envelope.id, "scheduler": self.name}
        with self._enqueueing:
            # The key keeps a schedule's ticks on one partition of a partitioned queue: the
            # broker de-duplicates a sequence per partition.
            publisher.send(
                encode(envelope), sequence_id=tick_sequence(tick), partition_key=schedule.name
            )
            ticks.send(json.dumps(record).encode(), partition_key=schedule.name)
        self.app.hooks.emit("after_enqueue", envelope)
        log.info("tick enqueued", schedule=schedule.name, tick=tick.isoformat(), job_id=envelope.id)


def wait_for_deduplication(admin: Admin, topic: str, stopping: threading.Event) -> None:
    """A topic policy reaches the broker asynchronously; ticks must not go out before it."""
    for _ in range(100):
        if admin.deduplicating(topic) or stopping.wait(0.1):
            return
    raise BrokerError(f"de-duplication did not become active on {topic}")


def last_ticks(client: pulsar.Client, settings: Settings) -> dict[str, dict[str, str]]:
    """The last tick each schedule enqueued, as the scheduler recorded it: its tick, job id and
    scheduler, by schedule name."""
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
