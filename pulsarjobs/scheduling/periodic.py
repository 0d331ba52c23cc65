"""Periodic jobs, as the App declares them: `@app.periodic(cron)` and `app.schedule(job, cron)`.
The schedules are App state (`app.schedules`); the scheduler (scheduler.py) enqueues their ticks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar
from zoneinfo import ZoneInfo

from pulsarjobs.errors import ConfigurationError
from pulsarjobs.jobs import DEFAULT_QUEUE, Job, JobDecorator, declared_job
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.scheduling.cron import (
    DEFAULT_GRACE,
    DEFAULT_MAX_CATCH_UP,
    DEFAULT_MISSED,
    DEFAULT_TZ,
    MissedPolicy,
    Schedule,
    parse_schedule,
)
from pulsarjobs.wire.envelope import ArgumentError, JobArg, encode

if TYPE_CHECKING:
    from pulsarjobs.clock import Clock
    from pulsarjobs.jobs import JobCall
    from pulsarjobs.wire.envelope import Envelope

P = ParamSpec("P")
R = TypeVar("R")


class Declaring(Protocol):
    """What of the App its periodic declarations use."""

    jobs: dict[str, Job[Any, Any]]
    schedules: dict[str, Schedule]
    clock: Clock

    def job(
        self,
        *,
        name: str | None,
        queue: str,
        max_attempts: int | None,
        retry: RetryPolicy | None,
        timeout: float | None,
    ) -> JobDecorator: ...

    def envelope(self, call: JobCall) -> Envelope: ...

    def schedule(self, job: Job[Any, Any] | str, cron: str, **options: Any) -> Schedule: ...


class PeriodicJobs:
    """The App's periodic declarations (a mixin of the App: `self` is the App)."""

    def periodic(
        self: Declaring,
        cron: str,
        *,
        tz: str | ZoneInfo = DEFAULT_TZ,
        missed: MissedPolicy = DEFAULT_MISSED,
        max_catch_up: int = DEFAULT_MAX_CATCH_UP,
        grace: timedelta = DEFAULT_GRACE,
        args: tuple[JobArg, ...] = (),
        kwargs: Mapping[str, JobArg] | None = None,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        max_attempts: int | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> JobDecorator:
        """Declare a job enqueued at every tick of `cron`, with `args` and `kwargs`:
        `@app.periodic("0 9 * * MON", tz="Europe/Berlin")`. `name` names the job and its
        schedule; the other options are `job`'s."""
        declare_job = self.job(
            name=name, queue=queue, max_attempts=max_attempts, retry=retry, timeout=timeout
        )

        def declare(function: Callable[P, R]) -> Job[P, R]:
            declared = declare_job(function)
            try:
                self.schedule(
                    declared,
                    cron,
                    tz=tz,
                    missed=missed,
                    max_catch_up=max_catch_up,
                    grace=grace,
                    args=args,
                    kwargs=kwargs,
                )
            except ConfigurationError:
                del self.jobs[declared.name]  # declared whole or not at all
                raise
            return declared

        return declare

    def schedule(
        self: Declaring,
        job: Job[Any, Any] | str,
        cron: str,
        *,
        tz: str | ZoneInfo = DEFAULT_TZ,
        missed: MissedPolicy = DEFAULT_MISSED,
        max_catch_up: int = DEFAULT_MAX_CATCH_UP,
        grace: timedelta = DEFAULT_GRACE,
        args: tuple[JobArg, ...] = (),
        kwargs: Mapping[str, JobArg] | None = None,
        name: str | None = None,
        queue: str | None = None,
    ) -> Schedule:
        """Enqueue a declared job at every tick of `cron`. A job may have several schedules,
        each with its own `name` (default: the job's); `queue` overrides the job's."""
        declared = declared_job(self.jobs, job)
        schedule = parse_schedule(
            name or declared.name,
            cron,
            job=declared.name,
            tz=tz,
            queue=queue,
            args=args,
            kwargs=kwargs,
            missed=missed,
            max_catch_up=max_catch_up,
            grace=grace,
        )
        if schedule.name in self.schedules:
            raise ConfigurationError(
                f"a schedule named {schedule.name!r} is declared twice; give each a name="
            )
        check_schedule_call(self, schedule)
        self.schedules[schedule.name] = schedule
        return schedule


def check_schedule_call(app: Declaring, schedule: Schedule) -> None:
    """Fail now rather than at the first tick: the arguments must fit and encode."""
    try:
        encode(app.envelope(schedule.call(app.clock())))
    except ArgumentError as exc:
        raise ConfigurationError(f"schedule {schedule.name}: {exc}") from None
