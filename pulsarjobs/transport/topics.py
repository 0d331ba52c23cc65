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

import hashlib
import re
from dataclasses import dataclass

from pulsarjobs.errors import ConfigurationError
from pulsarjobs.settings import Settings

QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*$")
PARTITION = re.compile(r"-partition-\d+$")  # how Pulsar names the partitions of a topic
FAIR_LANE = re.compile(r"-fair-\d+$")  # a queue's fair lanes (flow/fairness.py): `<queue>-fair-<i>`
DEAD_LETTER_SUBSCRIPTION = "pulsarjobs-dead-letters"
GROUPS_SUFFIX = "-groups"  # `<queue>-groups`: the members of a queue's grouped jobs
KEEPER_SUBSCRIPTION = "pulsarjobs-keep"  # on marks topics; never acknowledges: keeps marks stored

# The namespace's own topics, beside the queues'.
WORKERS_TOPIC = "pulsarjobs-workers"  # compacted: each worker's latest heartbeat
CONTROL_TOPIC = "pulsarjobs-control"  # commands to running workers
SCHEDULER_LEADER_TOPIC = "pulsarjobs-scheduler-leader"  # + "-<scope>": its exclusive producer leads
SCHEDULER_TICKS_TOPIC = "pulsarjobs-scheduler-ticks"  # compacted: the last tick of each schedule
PAUSED_TOPIC = "pulsarjobs-paused"  # compacted marks: the paused queues
CANCELLED_TOPIC = "pulsarjobs-cancelled"  # compacted marks: the cancelled job ids
UNIQUE_TOPIC = "pulsarjobs-unique"  # compacted marks: the held unique keys
DEBOUNCE_TOPIC = "pulsarjobs-debounce"  # compacted: each debounce key's window (debounce.py)
LIMITS_TOPIC = "pulsarjobs-limits"  # compacted marks: the concurrency limits, by limit key
BATCH_EVENTS_TOPIC = "pulsarjobs-batch-events"  # what happens to batches, keyed by batch id
BATCHES_TOPIC = "pulsarjobs-batches"  # compacted: each batch's state, as its owners last wrote it
BATCH_SUBSCRIPTION = "pulsarjobs-batches"  # Key_Shared: one worker counts each batch's events
RESULTS_TOPIC = "pulsarjobs-results"  # kept results of jobs, keyed by job id (results.py)
JOB_INDEX_TOPIC = "pulsarjobs-job-index"  # compacted: where each stored job is (job_index.py)
STEPS_TOPIC = "pulsarjobs-steps"  # compacted: durable jobs' completed steps, "<job id>/<step>"
SIGNALS_TOPIC = "pulsarjobs-signals"  # compacted: kept signals and durable jobs waiting for one
SLOTS_PREFIX = "pulsarjobs-slots-"  # + a limit key's digest: that limit's slots, one a message
CRON_PRODUCER_PREFIX = "pulsarjobs-cron-"  # + a schedule's tick key: its ticks' producer
OUTBOX_LEADER_TOPIC = "pulsarjobs-outbox-leader"  # + "-<outbox>": its exclusive producer relays
OUTBOX_PRODUCER_PREFIX = "pulsarjobs-outbox-"  # + "<outbox>": the relay's producers' name
METRICS_TOPIC = "pulsarjobs-metrics"  # each worker's counts by job type, a minute at a time


# What the namespace's own topics hold, and those of a queue, by the end of their names.
KINDS = {
    WORKERS_TOPIC: "worker heartbeats",
    CONTROL_TOPIC: "worker commands",
    SCHEDULER_TICKS_TOPIC: "scheduler ticks",
    PAUSED_TOPIC: "paused queues",
    CANCELLED_TOPIC: "cancelled jobs",
    UNIQUE_TOPIC: "unique keys",
    DEBOUNCE_TOPIC: "debounce windows",
    LIMITS_TOPIC: "concurrency limits",
    BATCH_EVENTS_TOPIC: "batch events",
    BATCHES_TOPIC: "batches",
    RESULTS_TOPIC: "job results",
    STEPS_TOPIC: "durable steps",
    SIGNALS_TOPIC: "signals and waits",
    JOB_INDEX_TOPIC: "job index",
    METRICS_TOPIC: "metrics by job type",
}
# Messages that are not job envelopes: JSON (batches, signals), Avro records of their own (steps).
RAW_TOPICS = (BATCH_EVENTS_TOPIC, BATCHES_TOPIC, STEPS_TOPIC, SIGNALS_TOPIC, JOB_INDEX_TOPIC,
              METRICS_TOPIC)  # fmt: skip
SUFFIX_KINDS = (
    ("-RETRY", "retries"),
    ("-DLQ", "dead letters"),
    ("-ordered", "ordered jobs"),
    (GROUPS_SUFFIX, "group members"),
)


@dataclass(frozen=True, slots=True)
class QueueTopics:
    queue: str
    jobs: str
    retry: str
    dead: str
    ordered: str  # ordered jobs (order_key), on a Key_Shared subscription of their own
    groups: str  # members of grouped jobs, keyed by group key, on a Key_Shared one (grouping/)

    def lane(self, index: int) -> str:
        """Fair-keyed jobs' lane `index` (flow/fairness.py), on a Shared subscription each."""
        return f"{self.jobs}-fair-{index}"


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


def metrics_topic(settings: Settings) -> str:
    return namespace_topic(settings, METRICS_TOPIC)


def control_topic(settings: Settings) -> str:
    return namespace_topic(settings, CONTROL_TOPIC)


def scheduler_leader_topic(settings: Settings, scope: str) -> str:
    """The topic whose exclusive producer leads the schedules of a scope (scheduling/scope.py)."""
    return namespace_topic(settings, f"{SCHEDULER_LEADER_TOPIC}-{scope}")


def is_scheduler_leader_topic(topic: str) -> bool:
    """Whether a topic elects a scheduler leader (without a scope: one before scopes)."""
    return topic.rsplit("/", 1)[-1].startswith(SCHEDULER_LEADER_TOPIC)


def cron_producer_name(tick_key: str) -> str:
    """The name of the producer that publishes a schedule's ticks, which the broker
    de-duplicates by: the same in every scheduler that runs that schedule."""
    return f"{CRON_PRODUCER_PREFIX}{tick_key}"


def outbox_leader_topic(settings: Settings, outbox: str) -> str:
    """The topic whose exclusive producer leads the relays of an outbox (outbox/relay.py)."""
    return namespace_topic(settings, f"{OUTBOX_LEADER_TOPIC}-{outbox}")


def outbox_producer_name(outbox: str) -> str:
    """The name the relays of an outbox publish under, which the broker de-duplicates by."""
    return f"{OUTBOX_PRODUCER_PREFIX}{outbox}"


def scheduler_ticks_topic(settings: Settings) -> str:
    return namespace_topic(settings, SCHEDULER_TICKS_TOPIC)


def paused_topic(settings: Settings) -> str:
    return namespace_topic(settings, PAUSED_TOPIC)


def cancelled_topic(settings: Settings) -> str:
    return namespace_topic(settings, CANCELLED_TOPIC)


def unique_topic(settings: Settings) -> str:
    return namespace_topic(settings, UNIQUE_TOPIC)


def debounce_topic(settings: Settings) -> str:
    return namespace_topic(settings, DEBOUNCE_TOPIC)


def limits_topic(settings: Settings) -> str:
    return namespace_topic(settings, LIMITS_TOPIC)


def batch_events_topic(settings: Settings) -> str:
    return namespace_topic(settings, BATCH_EVENTS_TOPIC)


def batches_topic(settings: Settings) -> str:
    return namespace_topic(settings, BATCHES_TOPIC)


def carries_jobs(topic: str) -> bool:
    """Whether a topic's messages are job envelopes (the namespace's batch topics hold JSON)."""
    return topic.rsplit("/", 1)[-1] not in RAW_TOPICS


def results_topic(settings: Settings) -> str:
    return namespace_topic(settings, RESULTS_TOPIC)


def job_index_topic(settings: Settings) -> str:
    return namespace_topic(settings, JOB_INDEX_TOPIC)


def steps_topic(settings: Settings) -> str:
    return namespace_topic(settings, STEPS_TOPIC)


def signals_topic(settings: Settings) -> str:
    return namespace_topic(settings, SIGNALS_TOPIC)


def slots_topic(settings: Settings, limit_key: str) -> str:
    digest = hashlib.sha256(limit_key.encode()).hexdigest()[:32]
    return namespace_topic(settings, f"{SLOTS_PREFIX}{digest}")


def topics_for(settings: Settings, queue: str) -> QueueTopics:
    base = namespace_topic(settings, check_queue_name(queue))
    own = f"{base}-{settings.subscription}"  # the subscription's own topics
    return QueueTopics(
        queue=queue,
        jobs=base,
        retry=f"{own}-RETRY",
        dead=f"{own}-DLQ",
        ordered=f"{base}-ordered",
        groups=f"{base}{GROUPS_SUFFIX}",
    )


def queue_of(settings: Settings, topic: str) -> str:
    """The queue a job topic (or one of its partitions), its ordered jobs' topic, one of its
    fair lanes, its group members' topic or a subscription's retry topic belongs to."""
    name = without_partition(topic.rsplit("/", 1)[-1])
    name = FAIR_LANE.sub("", name.removesuffix(f"-{settings.subscription}-RETRY"))
    return name.removesuffix("-ordered").removesuffix(GROUPS_SUFFIX)


def topic_kind(name: str) -> str:
    """What a topic of the namespace holds, by its name within it."""
    if name in KINDS:
        return KINDS[name]
    if name.startswith(SLOTS_PREFIX):
        return "concurrency slots"
    if is_scheduler_leader_topic(name):
        return "scheduler leader"
    if FAIR_LANE.search(name):
        return "fair lane"
    kind = next((kind for suffix, kind in SUFFIX_KINDS if name.endswith(suffix)), None)
    return kind or ("queue" if QUEUE_NAME.match(name) else "topic")


def fair_lane_index(topic: str) -> int | None:
    """The lane a fair lane's topic is (`<queue>-fair-<i>`: i); None for any other topic."""
    found = FAIR_LANE.search(topic)
    return None if found is None else int(found.group().rpartition("-")[2])


def partition_topic(topic: str, index: int) -> str:
    """The topic of one partition of a partitioned topic."""
    return f"{topic}-partition-{index}"


def without_partition(topic: str) -> str:
    """The partitioned topic a partition belongs to; any other topic as it is."""
    return PARTITION.sub("", topic)


def is_group_topic(topic: str) -> bool:
    """Whether a topic holds the members of grouped jobs (a queue name holds no '-')."""
    return topic.endswith(GROUPS_SUFFIX)


def is_dead_letter_topic(topic: str) -> bool:
    return topic.endswith("-DLQ")
