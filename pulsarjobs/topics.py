"""Queue names to topic names.

A queue is one topic that producers write jobs to. Each subscription that reads it has two
topics of its own, named as Pulsar names its retry and dead-letter topics: retries are
re-published to `<queue>-<subscription>-RETRY`, so that another subscription reading the same
queue does not run them again, and jobs whose retries ran out land in `<queue>-<subscription>-DLQ`.

A queue's topic may be partitioned (`pulsarjobs topics create Q --partitions N`): its messages
are then on `<queue>-partition-<i>`. Its retry and dead-letter topics stay one topic each, so a
queue has one place for its dead letters (the client would name one per partition otherwise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pulsarjobs.errors import ConfigurationError
from pulsarjobs.settings import Settings

QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*$")
PARTITION = re.compile(r"-partition-\d+$")  # how Pulsar names the partitions of a topic
DEAD_LETTER_SUBSCRIPTION = "pulsarjobs-dead-letters"
KEEPER_SUBSCRIPTION = "pulsarjobs-keep"  # on marks topics; never acknowledges: keeps marks stored

# The namespace's own topics, beside the queues'.
WORKERS_TOPIC = "pulsarjobs-workers"  # compacted: each worker's latest heartbeat
CONTROL_TOPIC = "pulsarjobs-control"  # commands to running workers
SCHEDULER_LEADER_TOPIC = "pulsarjobs-scheduler-leader"  # its exclusive producer is the leader
SCHEDULER_TICKS_TOPIC = "pulsarjobs-scheduler-ticks"  # compacted: the last tick of each schedule
PAUSED_TOPIC = "pulsarjobs-paused"  # compacted marks: the paused queues
CANCELLED_TOPIC = "pulsarjobs-cancelled"  # compacted marks: the cancelled job ids


@dataclass(frozen=True, slots=True)
class QueueTopics:
    queue: str
    jobs: str
    retry: str
    dead: str


def check_queue_name(queue: str) -> str:
    if not QUEUE_NAME.match(queue):
        raise ConfigurationError(
            f"queue name {queue!r} must start with a letter or digit and hold only letters, "
            "digits, '_' and '.'"
        )
    return queue


def namespace_topic(settings: Settings, name: str) -> str:
    """The full name of the topic `name` in the settings' namespace."""
    return f"persistent://{settings.full_namespace}/{name}"


def full_topic_name(settings: Settings, name: str) -> str:
    """A topic named within the namespace, or in full."""
    return name if "://" in name else namespace_topic(settings, name)


def workers_topic(settings: Settings) -> str:
    return namespace_topic(settings, WORKERS_TOPIC)


def control_topic(settings: Settings) -> str:
    return namespace_topic(settings, CONTROL_TOPIC)


def scheduler_leader_topic(settings: Settings) -> str:
    return namespace_topic(settings, SCHEDULER_LEADER_TOPIC)


def scheduler_ticks_topic(settings: Settings) -> str:
    return namespace_topic(settings, SCHEDULER_TICKS_TOPIC)


def paused_topic(settings: Settings) -> str:
    return namespace_topic(settings, PAUSED_TOPIC)


def cancelled_topic(settings: Settings) -> str:
    return namespace_topic(settings, CANCELLED_TOPIC)


def topics_for(settings: Settings, queue: str) -> QueueTopics:
    base = namespace_topic(settings, check_queue_name(queue))
    own = f"{base}-{settings.subscription}"  # the subscription's own topics
    return QueueTopics(queue=queue, jobs=base, retry=f"{own}-RETRY", dead=f"{own}-DLQ")


def queue_of(settings: Settings, topic: str) -> str:
    """The queue a job topic (or one of its partitions) or a subscription's retry topic
    belongs to."""
    name = without_partition(topic.rsplit("/", 1)[-1])
    return name.removesuffix(f"-{settings.subscription}-RETRY")


def partition_topic(topic: str, index: int) -> str:
    """The topic of one partition of a partitioned topic."""
    return f"{topic}-partition-{index}"


def without_partition(topic: str) -> str:
    """The partitioned topic a partition belongs to; any other topic as it is."""
    return PARTITION.sub("", topic)


def is_dead_letter_topic(topic: str) -> bool:
    return topic.endswith("-DLQ")


def topic_kind(name: str) -> str:
    """What a topic of the namespace is for, by its name within the namespace."""
    if name == WORKERS_TOPIC:
        return "worker heartbeats"
    if name == CONTROL_TOPIC:
        return "worker commands"
    if name in (PAUSED_TOPIC, CANCELLED_TOPIC):
        return "paused queues" if name == PAUSED_TOPIC else "cancelled jobs"
    if name.endswith("-RETRY"):
        return "retries"
    if name.endswith("-DLQ"):
        return "dead letters"
    return "queue" if QUEUE_NAME.match(name) else "topic"
