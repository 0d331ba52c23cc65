"""Settling a delivery with the broker: what replaces a message, stored before it is acked.

What replaces a message is the verdict's to say (wire/verdicts.py): a job still to run is
re-published to the subscription's retry topic, due at its time; a dead job goes to the
dead-letter topic with properties saying why; a message that is no job keeps its own bytes
there. Only once the broker has stored the replacement, and what the pipeline's steps store
beside it (steps.py), is the original acknowledged (pipeline.py): nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Protocol, cast

from pulsarjobs.app_view import AppView
from pulsarjobs.operations.dead_letters import dead_letter_properties
from pulsarjobs.transport.answers import Acks
from pulsarjobs.transport.topics import QueueTopics
from pulsarjobs.wire.envelope import encode, immutable
from pulsarjobs.wire.verdicts import Outcome, Publish


@immutable
class Delivery:
    """A received message, as settling needs it (a Pulsar message, or one in memory)."""

    topic: str
    message_id: str
    data: bytes


class Received(Protocol):
    """What settling reads of a received message: a Delivery, or the pipeline's Taken."""

    @property
    def topic(self) -> str: ...
    @property
    def message_id(self) -> str: ...
    @property
    def data(self) -> bytes: ...


class Settler:
    def __init__(self, app: AppView, topics: Callable[[str], QueueTopics]) -> None:
        self.app = app
        self.topics = topics  # of a queue, by its name

    def store(self, queue: str, delivery: Received, outcome: Outcome) -> Future[None] | None:
        """Publish what replaces the message, as its verdict says: a retry, a dead letter; None
        when nothing replaces it."""
        publishes = outcome.kind.policy.publishes
        if publishes is Publish.NOTHING:
            return None
        topics = self.topics(queue)
        if publishes is Publish.RETRY:
            return self.app.publish_envelope(outcome.envelope, topics.retry)
        as_received = publishes is Publish.DEAD_LETTER_AS_RECEIVED
        data = delivery.data if as_received else encode(outcome.envelope)
        properties = dead_letter_properties(
            outcome.envelope, outcome.reason, delivery.topic, delivery.message_id
        )
        chain_id = outcome.envelope.chain.id if outcome.envelope.chain else None
        acks = self.app.job_index.acks(outcome.envelope.id, queue, topics.dead, None, chain_id)
        return self.app.connection.publish(topics.dead, data, properties=properties, acks=acks)


def all_stored(futures: list[Future[None]]) -> Future[None]:
    """One future for messages sent apart: done once the broker has them all."""
    acks = Acks(len(futures))

    def told(done: Future[None]) -> None:
        failure = done.exception()
        acks.ok() if failure is None else acks.failed(cast(Exception, failure))

    for future in futures:
        future.add_done_callback(told)
    return acks.stored
