"""A topic's statistics as the admin API reports them, in the shape `pulsarjobs topics` and the
Inspector show: the topic, its subscriptions, their backlogs and consumers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str  # within the namespace
    topic: str  # in full
    partitions: int  # 0: not partitioned
    kind: str  # what it holds, as topics.topic_kind says


@dataclass(frozen=True, slots=True)
class SubscriptionStats:
    name: str
    type: str
    backlog: int
    unacked: int
    delayed: int
    consumers: int
    rate_out: float


@dataclass(frozen=True, slots=True)
class TopicStats:
    name: str
    topic: str
    partitions: int
    producers: int
    rate_in: float
    rate_out: float
    storage_bytes: int
    backlog: int  # the largest backlog of its subscriptions
    deduplication: str
    subscriptions: tuple[SubscriptionStats, ...]


def topic_stats_of(topic: str, partitions: int, raw: dict[str, Any]) -> TopicStats:
    """The stats of `topic` (with `partitions`, 0: not partitioned) from the admin API's `raw`."""
    subscriptions = tuple(
        subscription_stats(sub_name, sub)
        for sub_name, sub in sorted(raw.get("subscriptions", {}).items())
    )
    return TopicStats(
        name=topic.rsplit("/", 1)[-1],
        topic=topic,
        partitions=partitions,
        producers=len(raw.get("publishers", [])),
        rate_in=float(raw.get("msgRateIn", 0.0)),
        rate_out=float(raw.get("msgRateOut", 0.0)),
        storage_bytes=int(raw.get("storageSize", 0)),
        backlog=max((sub.backlog for sub in subscriptions), default=0),
        deduplication=str(raw.get("deduplicationStatus", "unknown")),
        subscriptions=subscriptions,
    )


def subscription_of(stats: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(stats.get("subscriptions", {}).get(name, {}))


def consumer_count(subscription: dict[str, Any]) -> int:
    """Consumers of a subscription, each once: a partitioned topic's stats list a consumer once
    per partition it reads (a worker names its consumer)."""
    consumers = subscription.get("consumers", [])
    return len({consumer.get("consumerName") or id(consumer) for consumer in consumers})


def subscription_stats(name: str, raw: dict[str, Any]) -> SubscriptionStats:
    return SubscriptionStats(
        name=name,
        type=str(raw.get("type", "")),
        backlog=int(raw.get("msgBacklog", 0)),
        unacked=int(raw.get("unackedMessages", 0)),
        delayed=int(raw.get("msgDelayed", 0)),
        consumers=consumer_count(raw),
        rate_out=float(raw.get("msgRateOut", 0.0)),
    )
