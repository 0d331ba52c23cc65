"""Periodic jobs as operators look at them: each schedule's next runs and last tick, and which
scheduler leads. Read for `pulsarjobs cron list` and the dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pulsar

from pulsarjobs.errors import NotFound
from pulsarjobs.scheduling.scheduler import SchedulingApp, last_ticks
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topics import scheduler_leader_topic, scheduler_ticks_topic


@dataclass(frozen=True, slots=True)
class ScheduleStatus:
    schedule: str
    cron: str
    tz: str
    job: str
    missed: str
    next: tuple[str, ...]  # the next runs, ISO times in the schedule's time zone
    last_tick: str | None  # the last tick a scheduler enqueued; None: never
    last_scheduler: str | None  # the scheduler that enqueued it, "host:pid"


@dataclass(frozen=True, slots=True)
class Leader:
    """The scheduler that enqueues the ticks now: the holder of the leader topic's exclusive
    producer, as the broker sees its connection."""

    address: str
    connected_since: datetime | None  # None when the broker does not say
    client_version: str


def recorded_ticks(
    admin: Admin, client: pulsar.Client, settings: Settings
) -> dict[str, dict[str, str]]:
    """The last tick of each schedule, as `last_ticks`; nothing (and no topic created) when
    no scheduler ever ran."""
    try:
        admin.stats(scheduler_ticks_topic(settings))
    except NotFound:
        return {}
    return last_ticks(client, settings)


def schedule_statuses(
    app: SchedulingApp, runs: int, last: dict[str, dict[str, str]]
) -> list[ScheduleStatus]:
    """Each schedule of the app with its next `runs` runs and its last tick (`last`)."""
    now = app.clock()
    statuses = []
    for name, schedule in app.schedules.items():
        upcoming, tick = [], now
        for _ in range(runs):
            tick = schedule.next_tick(tick)
            upcoming.append(tick.astimezone(schedule.tz).isoformat())
        recorded = last.get(name, {})
        statuses.append(
            ScheduleStatus(
                schedule=name,
                cron=schedule.cron,
                tz=str(schedule.tz),
                job=schedule.job,
                missed=schedule.missed,
                next=tuple(upcoming),
                last_tick=recorded.get("tick"),
                last_scheduler=recorded.get("scheduler"),
            )
        )
    return statuses


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
