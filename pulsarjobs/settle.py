"""Settling a delivery with the broker: what replaces a message, stored before it is acked.

A retry, an early, a deferred or a snoozed job is re-published to the subscription's retry
topic, due at its time; a dead job goes to the dead-letter topic with properties saying why; a
message that is no job keeps its own bytes there. Only once the broker has stored the
replacement is the original acknowledged: nothing is lost. A job of a batch that is over tells
its batch the same way, before it is acknowledged (batches.py). The worker's runners and the
in-memory TestRunner both settle through here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import pulsar

from pulsarjobs import batches
from pulsarjobs.app import App
from pulsarjobs.envelope import Envelope, EnvelopeError, JobError, decode, encode
from pulsarjobs.execution import Outcome
from pulsarjobs.topics import QueueTopics

# Messages remembered as settled: the broker may deliver one twice (at least once: an ack
# still on its way when a connection drops), and a message already settled needs no second run.
RECENTLY_SETTLED = 10_000


@dataclass(frozen=True, slots=True)
class Delivery:
    """What settling needs of a received message (a Pulsar message, or one in memory)."""

    topic: str
    message_id: str
    data: bytes


def delivery_of(message: pulsar.Message) -> Delivery:
    return Delivery(message.topic_name(), str(message.message_id()), message.data())


class Settler:
    def __init__(self, app: App, topics: Callable[[str], QueueTopics], worker: str) -> None:
        self.app = app
        self.worker = worker
        self.topics = topics  # of a queue, by its name
        self._settled: OrderedDict[str, None] = OrderedDict()
        self._settled_lock = threading.Lock()  # runner threads settle concurrently

    def decode(self, delivery: Delivery, writer_schema: str | None) -> Envelope | Outcome:
        """The job a message carries, or the "undecodable" outcome of one that carries none."""
        try:
            return decode(delivery.data, writer_schema)
        except EnvelopeError as exc:
            error = JobError("pulsarjobs.Undecodable", str(exc), "", self.app.clock(), self.worker)
            stand_in = Envelope(id=delivery.message_id, type="", queue="", last_error=error)
            reason = f"Undecodable: {exc}"
            self.app.hooks.emit("on_dead", stand_in, reason)
            return Outcome("undecodable", stand_in, reason=reason)

    def store(self, queue: str, delivery: Delivery, outcome: Outcome) -> Future[None] | None:
        """Publish what replaces the message (and tell its batch, if it is over); the future
        completes once the broker has it all. None when nothing is published."""
        stored = self._replace(queue, delivery, outcome)
        if outcome.envelope.batch_id is None:
            return stored
        return batches.report(self.app, outcome, stored)

    def _replace(self, queue: str, delivery: Delivery, outcome: Outcome) -> Future[None] | None:
        topics = self.topics(queue)
        match outcome.kind:
            case "retry" | "early" | "deferred" | "snoozed":
                return self.app.publish_envelope(outcome.envelope, topics.retry)
            case "dead" | "undecodable":
                data = delivery.data if outcome.kind == "undecodable" else encode(outcome.envelope)
                properties = dead_letter_properties(delivery, outcome)
                return self.app.connection.publish(topics.dead, data, properties=properties)
            case _:
                return None

    def seen(self, delivery: Delivery) -> bool:
        """Whether this very message was settled here before (a second broker delivery). A job
        enqueued again, even with the same id, is a new message and runs."""
        return delivery.message_id in self._settled

    def remember(self, delivery: Delivery) -> None:
        with self._settled_lock:
            self._settled[delivery.message_id] = None
            if len(self._settled) > RECENTLY_SETTLED:
                self._settled.popitem(last=False)


def dead_letter_properties(delivery: Delivery, outcome: Outcome) -> dict[str, str]:
    error = outcome.envelope.last_error
    return {
        "pulsarjobs-reason": outcome.reason,
        "pulsarjobs-error": error.summary[:1000] if error else "",
        "pulsarjobs-job-id": outcome.envelope.id,
        "pulsarjobs-job-type": outcome.envelope.type,
        "pulsarjobs-origin-topic": delivery.topic,
        "pulsarjobs-origin-message-id": delivery.message_id,
    }
