"""Which scheduler leads a scope's schedules (scope.py): the holder of its leader topic's
exclusive producer, as the broker's statistics show it."""

from __future__ import annotations

from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.leadership import Leader, topic_leader
from pulsarjobs.transport.topics import is_scheduler_leader_topic, scheduler_leader_topic


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
