"""Which scheduler leads a namespace's schedules: the holder of the leader topic's exclusive
producer, as the broker's statistics show it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pulsarjobs.errors import NotFound
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topics import scheduler_leader_topic


@dataclass(frozen=True, slots=True)
class Leader:
    """The scheduler that enqueues the ticks now: the holder of the leader topic's exclusive
    producer, as the broker sees its connection."""

    address: str
    connected_since: datetime | None  # None when the broker does not say
    client_version: str


def scheduler_leader(admin: Admin, settings: Settings) -> Leader | None:
    """The leading scheduler; None when no scheduler runs (or none ever ran)."""
    try:
        stats = admin.stats(scheduler_leader_topic(settings))
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
