"""Periodic jobs as operators look at them: each schedule's next runs and last tick (which
scheduler leads: leader.py). Read for `pulsarjobs cron list` and the dashboard."""

from __future__ import annotations

from dataclasses import dataclass

import pulsar

from pulsarjobs.errors import NotFound
from pulsarjobs.scheduling.scheduler import last_ticks
from pulsarjobs.scheduling.scope import SchedulingApp, tick_keys
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topics import scheduler_ticks_topic


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
    last_job_id: str | None = None  # the job it enqueued


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
    """Each schedule of the app with its next `runs` runs and its last tick (`last`: by the name
    of its ticks, or by its own name as schedulers before scopes recorded it)."""
    now = app.clock()
    keys = tick_keys(app)
    statuses = []
    for name, schedule in app.schedules.items():
        upcoming, tick = [], now
        for _ in range(runs):
            tick = schedule.next_tick(tick)
            upcoming.append(tick.astimezone(schedule.tz).isoformat())
        recorded = last.get(keys[name]) or last.get(name, {})
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
                last_job_id=recorded.get("job_id"),
            )
        )
    return statuses
