"""Topic names: a partition, a retry topic and a queue's own topic all lead back to the queue."""

from __future__ import annotations

from pulsarjobs.settings import Settings
from pulsarjobs.transport.topics import partition_topic, queue_of, topics_for, without_partition


def test_a_partition_and_the_retry_topic_belong_to_their_queue() -> None:
    settings = Settings(namespace="shop")
    topics = topics_for(settings, "orders.eu")
    assert queue_of(settings, partition_topic(topics.jobs, 3)) == "orders.eu"
    assert queue_of(settings, topics.retry) == "orders.eu"
    assert queue_of(settings, topics.jobs) == "orders.eu"


def test_only_a_partition_suffix_is_taken_off() -> None:
    assert without_partition("persistent://t/ns/q-partition-12") == "persistent://t/ns/q"
    assert without_partition("persistent://t/ns/q-partition-x") == "persistent://t/ns/q-partition-x"
    assert (
        without_partition("persistent://t/ns/q-pulsarjobs-DLQ")
        == "persistent://t/ns/q-pulsarjobs-DLQ"
    )
