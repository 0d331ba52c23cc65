"""Acknowledging chosen messages on the workers' subscription, without receiving them: how run
now, cancel and kill take a waiting job off the Scheduled and Retries lists at once, rather than
when a worker would drop it at its due time (as replay.py acknowledges dead letters)."""

from __future__ import annotations

import pulsar

from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.transport.connection import client_errors


class Ackers:
    """Acknowledges messages on the workers' subscription, with one consumer per topic (or
    partition) that never receives; closing them sends the acknowledgements still grouped."""

    def __init__(self, inspector: Inspector) -> None:
        self.inspector = inspector
        self.consumers: dict[str, pulsar.Consumer] = {}

    def __enter__(self) -> Ackers:
        return self

    def __exit__(self, *_: object) -> None:
        for consumer in self.consumers.values():
            consumer.close()

    def acknowledge(self, message: pulsar.Message) -> None:
        topic = message.topic_name()
        if topic not in self.consumers:
            settings = self.inspector.settings
            with client_errors(settings.service_url, f"subscribing to {topic}"):
                self.consumers[topic] = self.inspector.client.subscribe(
                    topic,
                    settings.subscription,
                    consumer_type=pulsar.ConsumerType.Shared,  # as workers read it
                    receiver_queue_size=0,  # it only acknowledges: never let the broker hand it one
                    batch_index_ack_enabled=True,
                )
        self.consumers[topic].acknowledge(message.message_id())
