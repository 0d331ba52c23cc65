"""Which scheduler leads a scope's schedules (scope.py): the holder of its leader topic's
exclusive producer, as the broker's statistics show it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pulsarjobs.errors import NotFound
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topics import is_scheduler_leader_topic, scheduler_leader_topic


@dataclass(frozen=True, slots=True)
class Leader:
    """The scheduler that enqueues the ticks now: the holder of the leader topic's exclusive
    producer, as the broker sees its connection."""

    address: str
    connected_since: datetime | None  # None when the broker does not say
    client_version: str


def scheduler_leader(admin: Admin, settings: Settings, scope: str | None = None) -> Leader | None:
    """The scheduler leading the schedules of `scope`, or with no scope the first found of any
    scope in the namespace; None when no scheduler runs (or none ever ran)."""
    if scope is not None:
        return topic_leader(admin, scheduler_leader_topic(settings, scope))
    for topic in sorted(admin.topics(settings.full_namespace)):
        leader = topic_leader(admin, topic) if is_scheduler_leader_topic(topic) else None
        if leader is not None:
            return leader
    return None


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
