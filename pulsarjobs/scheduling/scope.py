"""Whose ticks are whose in a namespace several apps schedule in: the name of each schedule's
ticks, and the scope of an app's schedules, within which its schedulers elect one leader.

A schedule's ticks are named by the schedule and a digest of what makes them — its job, queue,
cron line and time zone — so that two schedules differing in any of these, even under one name,
have ticks of their own, and two apps declaring the same schedule share its ticks. The scope is
a digest of the names of all of an app's ticks: the replicas of an app share it (one of them
leads, the others stand by), and apps whose schedules differ each have their own leader.
"""

from __future__ import annotations

import hashlib
import json
from typing import Protocol

from pulsarjobs.app_view import AppView
from pulsarjobs.scheduling.cron import Schedule


class SchedulingApp(AppView, Protocol):
    """What the scheduler and the schedules' status use of the App beyond what the worker does."""

    @property
    def schedules(self) -> dict[str, Schedule]: ...


def schedule_queue(app: SchedulingApp, schedule: Schedule) -> str:
    """The queue a schedule's jobs go to: its own, or its job's."""
    return schedule.queue or app.jobs[schedule.job].queue


def tick_key(schedule: Schedule, queue: str) -> str:
    """The name of a schedule's ticks: `<schedule>-<digest of its job, queue, line and zone>`.
    Its arguments and missed-tick policy are not in it: changing them keeps its ticks' history."""
    return f"{schedule.name}-{digest([schedule.job, queue, schedule.cron, str(schedule.tz)], 10)}"


def tick_keys(app: SchedulingApp) -> dict[str, str]:
    """The name of each of the app's schedules' ticks, by schedule name."""
    return {name: tick_key(s, schedule_queue(app, s)) for name, s in app.schedules.items()}


def schedules_scope(app: SchedulingApp) -> str:
    """The scope of the app's schedules: the same for every app that declares the same ones."""
    return digest(sorted(tick_keys(app).values()), 12)


def digest(parts: list[str], length: int) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:length]
