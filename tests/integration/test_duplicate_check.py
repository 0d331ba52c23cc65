"""A message the broker delivers again after the worker settled it is acknowledged, not run:
the worker knows it by its message id's bytes (pipeline.py), which are the same on every
delivery of one message and differ between two messages of one job."""

from __future__ import annotations

import pulsar

from pulsarjobs import App
from pulsarjobs.testing import TestRunner
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.worker._queue_feed import QueueFeed
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings


def test_a_message_delivered_again_after_its_ack_is_skipped(broker: BrokerUnderTest) -> None:
    app = App(settings=fresh_settings(broker))
    ran: list[str] = []

    @app.job
    def greet(name: str) -> None:
        ran.append(name)

    consumer = app.connection.client.subscribe(
        topics_for(app.settings, "default").jobs, app.settings.subscription,
        consumer_type=pulsar.ConsumerType.Shared, negative_ack_redelivery_delay_ms=100,
    )  # fmt: skip
    try:
        greet.enqueue("once")
        greet.enqueue("twice")  # its own message
        first, other = consumer.receive(10_000), consumer.receive(10_000)
        consumer.negative_acknowledge(first)
        again = consumer.receive(10_000)  # the broker delivers it again
        assert str(again.message_id()) == str(first.message_id())
        queue = QueueFeed("default", consumer, 10, lambda _arrived: None)
        with TestRunner(app) as runner:
            pipeline = runner._pipeline  # the worker's own
            for message in (first, again, other):  # the second delivery after the ack
                taken = pipeline.take_in(queue, message)
                if taken is not None:
                    pipeline.carry(taken)
        assert sorted(ran) == ["once", "twice"]
        assert (runner.stats.done, runner.stats.duplicates) == (2, 1)
    finally:
        consumer.close()
        app.close()
