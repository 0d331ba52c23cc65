"""The worker's batch tracker: counts the events of the batches the broker gives it, and enqueues
each batch's callbacks once all its jobs have settled.

Every worker reads `pulsarjobs-batch-events` on one Key_Shared subscription keyed by batch id, so
the events of a batch go to one worker at a time, in order. For a round of events it reads the
batches' stored state (batch_state.py), applies the events (idempotent by job id), stores the
new state, enqueues the callbacks of the batches now complete, and only then acknowledges the
events: a tracker killed at any point leaves them to the next one, which finds what the first
one stored. Why a callback is never enqueued twice is in docs/workflows.md.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pulsar
import structlog

from pulsarjobs.app_view import AppView
from pulsarjobs.logs import error_text
from pulsarjobs.transport.connection import crypto_key_reader
from pulsarjobs.transport.keylocks import key_lock
from pulsarjobs.transport.topics import (
    BATCH_SUBSCRIPTION,
    batch_events_topic,
    batches_topic,
    topics_for,
)
from pulsarjobs.wire.envelope import Envelope, EnvelopeError, decode
from pulsarjobs.workflows import batches
from pulsarjobs.workflows.batch_state import (
    OWNER_SEPARATOR,
    BatchState,
    BatchTable,
    due_callbacks,
    final_record,
    firing_record,
)

log = structlog.get_logger("pulsarjobs.batches")

ROUND = pulsar.ConsumerBatchReceivePolicy(500, 4 * 1024 * 1024, 100)  # events at most, bytes, ms
READ_TIMEOUT_MS = 5_000
RETRY_EVENTS_MS = 1_000  # a round that failed is delivered again after this
HEAL_AFTER_S = 10.0  # a batch complete in the stored state but not ended: its owner was lost
LOCK_SCOPE = "batch"
BROKER_AWAY = (pulsar.NotConnected, pulsar.ConnectError, pulsar.Timeout, pulsar.AlreadyClosed)
SCAN_MARGIN = timedelta(minutes=1)  # clocks of the machines that fire and publish may differ


class BatchTracker:
    def __init__(self, app: AppView, worker: str) -> None:
        self.app = app
        self.owner = worker  # the key suffix of the records this tracker writes
        self.topic = batches_topic(app.settings)
        self.table = BatchTable()
        self._complete_since: dict[str, float] = {}  # batches seen complete and not ended
        self._stopping = threading.Event()
        client = app.connection.client
        app.connection.keep_marks(self.topic)
        events = batch_events_topic(app.settings)
        self._consumer = client.subscribe(
            events,
            BATCH_SUBSCRIPTION,
            consumer_type=pulsar.ConsumerType.KeyShared,
            initial_position=pulsar.InitialPosition.Earliest,
            batch_receive_policy=ROUND,
            negative_ack_redelivery_delay_ms=RETRY_EVENTS_MS,
            crypto_key_reader=crypto_key_reader(app.settings),
        )
        self._reader = client.create_reader(
            self.topic, pulsar.MessageId.earliest, is_read_compacted=True
        )
        self._thread = threading.Thread(target=self._run, name="pulsarjobs-batches", daemon=True)

    @classmethod
    def start(cls, app: AppView, worker: str) -> BatchTracker:
        tracker = cls(app, worker)
        tracker._thread.start()
        return tracker

    @classmethod
    def start_or_warn(cls, app: AppView, worker: str) -> BatchTracker | None:
        """Jobs run without it: this worker then counts no batch (the others do)."""
        try:
            return cls.start(app, worker)
        except Exception as exc:
            log.error("cannot count batches; their callbacks wait for another worker",
                      error=error_text(exc))  # fmt: skip
            return None

    def stop(self) -> None:
        """Finish the round in hand; its events go to another worker if it cannot."""
        self._stopping.set()
        self._thread.join(timeout=30)
        for closable in (self._consumer, self._reader):
            with contextlib.suppress(Exception):  # a lost connection closed it already
                closable.close()

    def _run(self) -> None:
        healed_at = time.monotonic()
        away = False  # the broker was away at the last round: said once, until it is back
        while not self._stopping.is_set():
            try:
                messages = self._consumer.batch_receive()
            except Exception as exc:  # closed, or the broker is away: the client reconnects
                if self._stopping.is_set():
                    return
                log.warning("cannot receive batch events", error=error_text(exc))
                time.sleep(1)
                continue
            try:
                if messages:
                    self._count(messages)
                elif time.monotonic() - healed_at > HEAL_AFTER_S / 2:
                    healed_at = time.monotonic()
                    self._heal()
                away = False
            except BROKER_AWAY as exc:  # a fail-over: no fault of ours, the client reconnects
                if not away:
                    log.warning("batches wait for the broker; their events will be delivered "
                                "again", error=error_text(exc))  # fmt: skip
                away = True
                self._hand_back(messages)
            except Exception:
                log.exception("could not count batch events; they will be delivered again")
                self._hand_back(messages)

    def _hand_back(self, messages: list[pulsar.Message]) -> None:
        for message in messages:
            with contextlib.suppress(Exception):  # a lost connection hands them back anyway
                self._consumer.negative_acknowledge(message)

    def _count(self, messages: list[pulsar.Message]) -> None:
        """Apply a round of events, store the states, fire the complete batches, then ack."""
        self._catch_up()
        touched: dict[str, BatchState] = {}
        for message in messages:
            try:
                event = json.loads(message.data())
                batch_id = event["batch"]
            except (ValueError, KeyError, TypeError):
                log.warning("not a batch event; skipped", message_id=str(message.message_id()))
                continue
            if self.table.ended(batch_id):
                continue  # told again after it ended: counted already
            state = touched.get(batch_id) or self.table.state(batch_id)
            touched[batch_id] = state
            state.apply(event)
        stored = [
            self.app.connection.publish(self.topic, state.encode(), key=self._key(batch_id))
            for batch_id, state in touched.items()
        ]
        for future in stored:
            future.result()
        for batch_id, state in touched.items():
            self.table.states.setdefault(batch_id, {})[self.owner] = state
            if state.complete:
                self._fire(state)
        for message in messages:
            self._consumer.acknowledge(message)

    def _heal(self) -> None:
        """Fire a batch complete in the stored state whose owner did not end it: two workers
        each counted part of its last events (the broker moved its key between them)."""
        self._catch_up()
        now = time.monotonic()
        for batch_id in list(self.table.states):
            if self.table.ended(batch_id) or not (state := self.table.state(batch_id)).complete:
                self._complete_since.pop(batch_id, None)
            elif now - self._complete_since.setdefault(batch_id, now) > HEAL_AFTER_S:
                self._fire(state)

    def _fire(self, state: BatchState) -> None:
        """Enqueue the callbacks of a complete batch, tell its parent, and end it: once, under
        the batch's lock, whoever else tries."""
        with key_lock(self.app.connection, self.topic, LOCK_SCOPE, state.id) as producer:

            def store(key: str, data: bytes) -> None:
                producer.send(data, partition_key=key)
                self.table.apply(key, data)

            self._catch_up()
            end = self.table.ends.get(state.id, {})
            if end.get("state") == "done":
                return
            state.merge(self.table.state(state.id))  # what other workers counted, if any
            due = due_callbacks(state)
            fired, callbacks = list(due), list(due.values())
            if end.get("state") == "firing":  # its firer died: enqueue what it had not
                since = datetime.fromisoformat(end["at"]) - SCAN_MARGIN
                callbacks = [env for env in callbacks if not self._enqueued(env, since)]
            else:
                store(state.id, firing_record(datetime.now(UTC)))
            for envelope in callbacks:
                self.app.publish_envelope(envelope).result()
            if (told := batches.tell_parent(self.app, state)) is not None:
                told.result()
            store(state.id, final_record(state, fired))
            for owner in list(self.table.states.get(state.id, {})):
                store(f"{state.id}{OWNER_SEPARATOR}{owner}", b"")
        self._complete_since.pop(state.id, None)
        log.info("batch complete", batch_id=state.id, jobs=len(state.members), fired=fired)

    def _enqueued(self, envelope: Envelope, since: datetime) -> bool:
        """Whether a callback is on its queue's topic already, published since `since`."""
        topics = topics_for(self.app.settings, envelope.queue)
        topic = topics.ordered if envelope.order_key is not None else topics.jobs
        reader = self.app.connection.client.create_reader(topic, pulsar.MessageId.earliest)
        try:
            reader.seek(int(since.timestamp() * 1000))
            while reader.has_message_available():
                try:
                    if decode(reader.read_next(timeout_millis=READ_TIMEOUT_MS).data()).id == (
                        envelope.id
                    ):
                        return True
                except EnvelopeError:
                    continue
            return False
        finally:
            reader.close()

    def _catch_up(self) -> None:
        """Read the stored states to the end: what any worker stored before this call."""
        while self._reader.has_message_available():
            message = self._reader.read_next(timeout_millis=READ_TIMEOUT_MS)
            self.table.apply(message.partition_key(), message.data())

    def _key(self, batch_id: str) -> str:
        return f"{batch_id}{OWNER_SEPARATOR}{self.owner}"
