"""Concurrency limits: at most N jobs of a limit key run at once, across every worker.

A limit key's N slots are N messages on a topic of its own (`pulsarjobs-slots-<digest>`), read
by every worker on one Shared subscription that never acknowledges them. A worker takes a slot
by receiving one (a consumer with no prefetch: the broker hands a slot only to a worker waiting
for one, so none is hoarded) and gives it back with a negative acknowledgement once the job has
run; the broker then hands it to the next waiting worker. A worker that dies holding slots gives
them back too: the broker redelivers what a closed connection had not acknowledged. A job over
the limit waits in its worker, unacknowledged, without polling and without using an attempt.

The first worker to need a limit makes its slots, under the key's lock (keylocks.py), and writes
the limit as a mark on `pulsarjobs-limits` for operators to see. A slot's message holds its
number: a slot numbered at or past the limit is dropped when taken, so a lowered limit takes
effect as the extra slots come round, and a raised one at the next worker that needs it.

A rate limit (N starts a second of a limit key) is N start tokens made the same way (the slots
of `rate:<key>`): a job takes one before it starts and gives it back at once, to come round again
one second later. At most N jobs of the key start within any second, cluster-wide.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pulsar
import structlog

from pulsarjobs.app_view import AppView
from pulsarjobs.errors import NotFound
from pulsarjobs.transport import marks
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.connection import Connection, client_errors
from pulsarjobs.transport.keylocks import key_lock
from pulsarjobs.transport.topic_stats import subscription_of
from pulsarjobs.transport.topics import limits_topic, slots_topic
from pulsarjobs.wire.envelope import Envelope

log = structlog.get_logger("pulsarjobs.limits")

SLOTS_SUBSCRIPTION = "pulsarjobs-slots"
GIVE_BACK_DELAY_MS = 10  # a slot given back is handed out again after this (plus the client's tick)
RATE_PREFIX = "rate:"  # a rate limit's start tokens are the slots of this key + the limit key
TOKEN_HOLD_MS = 1_000  # a start holds its token this long: N tokens, at most N starts a second
LOCK_SCOPE = "limit"


class LimitSlots:
    """The slots this worker takes for its limited jobs."""

    def __init__(self, app: AppView, worker: str, concurrency: int) -> None:
        self.app = app
        self.worker = worker
        self._consumers: dict[str, tuple[pulsar.Consumer, int]] = {}  # limit key -> and limit
        self._lock = threading.Lock()
        self.waiting = 0  # jobs waiting for a slot now
        # Where async runners wait for a slot: a receive blocks a thread.
        self._waiting = ThreadPoolExecutor(concurrency, thread_name_prefix="pulsarjobs-slot")

    def take(self, envelope: Envelope) -> pulsar.Message | None:
        """Wait for a start token, if the job's type has a rate limit, then for a slot, if it
        has a concurrency limit (blocks); the slot, or None."""
        job, key = self.app.jobs.get(envelope.type), envelope.limit_key
        if job is None or key is None:
            return None
        rate, limit = job.flow.rate_limit, job.flow.concurrency_limit
        if rate is not None:
            token = self._wait_for(RATE_PREFIX + key, rate, TOKEN_HOLD_MS)
            self._consumers[RATE_PREFIX + key][0].negative_acknowledge(token)  # back in 1 s
        return None if limit is None else self._wait_for(key, limit, GIVE_BACK_DELAY_MS)

    def _wait_for(self, key: str, limit: int, hold_ms: int) -> pulsar.Message:
        consumer = self._consumer(key, limit, hold_ms)
        with self._lock:
            self.waiting += 1
        try:
            while True:
                slot = consumer.receive()
                if int(slot.data() or b"0") < limit:
                    return slot
                consumer.acknowledge(slot)  # the limit was lowered: one slot less
        finally:
            with self._lock:
                self.waiting -= 1

    async def take_async(self, envelope: Envelope) -> pulsar.Message | None:
        return await asyncio.get_running_loop().run_in_executor(self._waiting, self.take, envelope)

    def give(self, envelope: Envelope, slot: pulsar.Message) -> None:
        """The job has run: its slot goes to the next one waiting, in any worker."""
        assert envelope.limit_key is not None
        consumer, _ = self._consumers[envelope.limit_key]
        consumer.negative_acknowledge(slot)

    def close(self) -> None:
        """Every slot held goes back (closing a consumer hands back what it did not ack)."""
        with self._lock:
            consumers, self._consumers = list(self._consumers.values()), {}
        for consumer, _ in consumers:
            with contextlib.suppress(Exception):  # closed already, when the client went first
                consumer.close()
        self._waiting.shutdown(wait=False, cancel_futures=True)

    def _consumer(self, key: str, limit: int, hold_ms: int) -> pulsar.Consumer:
        known = self._consumers.get(key)
        if known is not None and known[1] == limit:
            return known[0]
        with self._lock:
            if (known := self._consumers.get(key)) is None:
                connection = self.app.connection
                make_slots(connection, key, limit)
                consumer = connection.client.subscribe(
                    slots_topic(connection.settings, key),
                    SLOTS_SUBSCRIPTION,
                    consumer_type=pulsar.ConsumerType.Shared,
                    receiver_queue_size=0,  # no prefetch: a slot goes only to who waits for one
                    negative_ack_redelivery_delay_ms=hold_ms,
                    consumer_name=self.worker,
                    initial_position=pulsar.InitialPosition.Earliest,
                )
                known = self._consumers[key] = (consumer, limit)
            return known[0]


def make_slots(connection: Connection, key: str, limit: int) -> None:
    """Make the limit key's slots up to `limit`, once across all workers, and mark the limit."""
    settings = connection.settings
    topic = slots_topic(settings, key)
    with key_lock(connection, limits_topic(settings), LOCK_SCOPE, key) as lock:
        connection.prepare_queue(topic, SLOTS_SUBSCRIPTION)  # slots are kept from the first
        existing = slot_count(connection, topic)
        if existing < limit:
            with client_errors(settings.service_url, f"making slots on {topic}"):
                producer = connection.client.create_producer(topic, batching_enabled=False)
                try:
                    for number in range(existing, limit):
                        producer.send(str(number).encode())
                finally:
                    producer.close()
            log.info("concurrency slots made", limit_key=key, limit=limit, made=limit - existing)
        connection.keep_marks(limits_topic(settings))
        lock.send(json.dumps({"limit": limit, "topic": topic}).encode(), partition_key=key)


def slot_count(connection: Connection, topic: str) -> int:
    """LimitSlots on the topic: its messages the slots subscription holds (none is ever acked but
    a dropped one)."""
    settings = connection.settings
    try:
        with Admin(settings.admin_url, token=settings.token) as admin:
            stats = admin.stats(topic)
    except NotFound:
        return 0
    return int(subscription_of(stats, SLOTS_SUBSCRIPTION).get("msgBacklog", 0))


def limits(connection: Connection) -> dict[str, int]:
    """Every concurrency limit workers have used, by limit key."""
    found = {}
    for key, data in marks.read(connection, limits_topic(connection.settings)).items():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            found[key] = int(json.loads(data)["limit"])
    return found
