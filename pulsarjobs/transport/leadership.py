"""Leadership by a topic's exclusive producer: the broker grants it to one client, queues the
others (WaitForExclusive) and passes it on the moment the holder's connection drops, a crash
included. The cron scheduler and the outbox relay elect their leader this way."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pulsar

from pulsarjobs.errors import BrokerError, NotFound
from pulsarjobs.transport.admin import Admin


@dataclass(frozen=True, slots=True)
class Leader:
    """The holder of a leader topic's exclusive producer, as the broker sees its connection."""

    address: str
    connected_since: datetime | None  # None when the broker does not say
    client_version: str


@contextlib.contextmanager
def leadership(client: pulsar.Client, topic: str) -> Iterator[pulsar.Producer]:
    """Lead while inside: waits for the topic's exclusive producer (pulsar.Timeout after the
    client's operation timeout while another client holds it). Leadership is lost when the
    yielded producer stops being connected."""
    producer = client.create_producer(
        topic, producer_name=None, access_mode=pulsar.ProducerAccessMode.WaitForExclusive
    )
    try:
        yield producer
    finally:
        producer.close()


def topic_leader(admin: Admin, topic: str) -> Leader | None:
    """The holder of a leader topic's exclusive producer."""
    try:
        stats = admin.stats(topic)
    except NotFound:
        return None
    for publisher in stats.get("publishers", []):
        return Leader(
            address=str(publisher.get("address", "")),
            connected_since=broker_time(publisher.get("connectedSince")),
            client_version=str(publisher.get("clientVersion", "")),
        )
    return None


def broker_time(text: object) -> datetime | None:
    """A time in the broker's stats ("2026-01-04T09:00:00.123456789Z": nanoseconds, which
    Python does not read, are cut to microseconds)."""
    if not isinstance(text, str) or not text:
        return None
    whole, dot, fraction = text.removesuffix("Z").partition(".")
    try:
        return datetime.fromisoformat(f"{whole}{dot}{fraction[:6]}+00:00")
    except ValueError:
        return None


def deduplicate(admin: Admin, topic: str, stopping: threading.Event) -> None:
    """Turn on the broker's de-duplication on a topic and wait until it is active: a topic
    policy reaches the broker asynchronously, and a sequence id sent before it is not kept."""
    admin.enable_deduplication(topic)
    for _ in range(100):
        if admin.deduplicating(topic) or stopping.wait(0.1):
            return
    raise BrokerError(f"de-duplication did not become active on {topic}")
