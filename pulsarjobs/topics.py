"""Queue names to topic names.

A queue is one topic that producers write jobs to. Each consumer group (subscription) that reads
it has two topics of its own, named as Pulsar names its retry and dead-letter topics: retries are
re-published to `<queue>-<group>-RETRY`, so that another group reading the same queue does not
run them again, and jobs whose retries ran out land in `<queue>-<group>-DLQ`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pulsarjobs.errors import ConfigurationError
from pulsarjobs.settings import Settings

QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*$")
DEAD_LETTER_SUBSCRIPTION = "pulsarjobs-dead-letters"


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


def topics_for(settings: Settings, queue: str) -> QueueTopics:
    base = f"persistent://{settings.full_namespace}/{check_queue_name(queue)}"
    group = f"{base}-{settings.subscription}"
    return QueueTopics(queue=queue, jobs=base, retry=f"{group}-RETRY", dead=f"{group}-DLQ")


def queue_of(settings: Settings, topic: str) -> str:
    """The queue a job topic or a group's retry topic belongs to."""
    name = topic.rsplit("/", 1)[-1]
    return name.removesuffix(f"-{settings.subscription}-RETRY")
