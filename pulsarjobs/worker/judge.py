"""The verdicts a worker gives a delivery: before it runs (cancelled, expired, early, no such
job, arguments that do not fit) and once it ran (done, retried, dead, snoozed, parked, cancelled).

What each verdict then means — what is stored, whether the job is over, whether it keeps its
unique key and its place in its order — is the verdict table's to say (wire/verdicts.py); the
Judge only gives them, and calls the verdict hooks (`on_failure`, `on_dead`, `on_expired`)
where it does.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from pulsarjobs.clock import Clock
from pulsarjobs.logs import fields
from pulsarjobs.snooze import Snooze
from pulsarjobs.wire.envelope import Envelope, EnvelopeError, JobError
from pulsarjobs.wire.verdicts import Outcome, Verdict
from pulsarjobs.worker._running import CurrentRuns
from pulsarjobs.worker.crashes import CRASHES_BEFORE_DEAD, DEFER_SECONDS, Crashes
from pulsarjobs.workflows import chains
from pulsarjobs.workflows.durable_errors import Parked, Superseded

if TYPE_CHECKING:
    from pulsarjobs.app_view import AppView
    from pulsarjobs.jobs import Job

Work = Coroutine[Any, Any, Any] | functools.partial[Any]  # an async run, or a sync call

log = structlog.get_logger("pulsarjobs.execution")


def bind(job: Job[Any, Any], envelope: Envelope) -> Work:
    """The run with its arguments bound; TypeError when they do not fit the job's signature
    or its plain annotations."""
    if job.is_async:
        if (types := job.types) is not None:
            types.check(envelope.args, envelope.kwargs)
        # Calling an `async def` binds the arguments (TypeError here) but runs none of its body.
        coroutine: Coroutine[Any, Any, Any] = job.func(*envelope.args, **envelope.kwargs)
        return coroutine
    job.check_arguments(envelope.args, envelope.kwargs)
    return functools.partial(job.func, *envelope.args, **envelope.kwargs)


class Judge:
    def __init__(self, app: AppView, worker: str, clock: Clock, running: CurrentRuns) -> None:
        self.app = app
        self.worker = worker
        self.clock = clock
        self.running = running  # what runs now, and the cancelled job ids

    # -- before it runs ----------------------------------------------------------------------

    def before(
        self, envelope: Envelope, steps: Sequence[Callable[[Envelope], Outcome | None]] = ()
    ) -> Outcome | Work:
        """The verdict on a job that must not run now — cancelled, expired, early, one of the
        `steps`' own, no such job, arguments that do not fit — else its work, ready to run."""
        # The clock is read only for a job with something to check: most have nothing.
        if self.running.cancelled or envelope.expires_at is not None:  # else nothing to call off
            called_off = self.called_off(envelope, self.clock())
            if called_off is not None:
                return called_off
        if envelope.run_at is not None and envelope.run_at > self.clock():
            return Outcome(Verdict.EARLY, envelope)  # the broker let it out early: never run it so
        for step in steps:
            if (verdict := step(envelope)) is not None:
                return verdict
        job = self.app.jobs.get(envelope.type)
        if job is None:
            return self.dead(envelope, "UnknownJobType", f"no job {envelope.type!r} is declared")
        try:
            return bind(job, envelope)
        except TypeError as exc:
            return self.dead(envelope, "BadArguments", f"{envelope.type}{job.signature}: {exc}")

    def called_off(self, envelope: Envelope, now: datetime) -> Outcome | None:
        """Cancelled or expired: a job that was to run must not (asked again once a limited
        job got its slot)."""
        cancelled = self.running.cancelled
        if cancelled and (at := cancelled.get(envelope.id)) and envelope.created_at <= at:
            return self.cancelled(envelope)
        if envelope.expires_at is not None and envelope.expires_at <= now:
            self.app.hooks.emit("on_expired", envelope)
            return Outcome(Verdict.EXPIRED, envelope)
        return None

    def undecodable(self, message_id: str, exc: EnvelopeError) -> Outcome:
        """A message that carries no job: it goes to the dead letters as it came."""
        error = JobError("pulsarjobs.Undecodable", str(exc), "", self.clock(), self.worker)
        stand_in = Envelope(id=message_id, type="", queue="", last_error=error)
        reason = f"Undecodable: {exc}"
        self.app.hooks.emit("on_dead", stand_in, reason)
        return Outcome(Verdict.UNDECODABLE, stand_in, reason=reason)

    def after_crashes(self, envelope: Envelope, crashes: Crashes) -> Outcome | None:
        """What becomes of a job that was running when worker processes died: dead once it
        was there CRASHES_BEFORE_DEAD times; put back once after each death, to run beside
        other jobs next time; else (None) it runs."""
        count, last_death = crashes
        if count >= CRASHES_BEFORE_DEAD:
            reason = f"killed its worker process {count} times"
            error = JobError("pulsarjobs.KilledWorker", reason, "", self.clock(), self.worker)
            dead = envelope.failed_with(error)
            self.app.hooks.emit("on_dead", dead, reason)
            return Outcome(Verdict.DEAD, dead, reason)
        if envelope.run_at is not None and envelope.run_at.timestamp() > last_death:
            return None  # put back since its last crash already
        delay = random.uniform(*DEFER_SECONDS)
        log.warning("job was running when its worker process died; it runs again later",
                    job_id=envelope.id, job_type=envelope.type, deaths=count,
                    dead_after=CRASHES_BEFORE_DEAD, run_in=round(delay, 1))  # fmt: skip
        later = envelope.replace(run_at=self.clock() + timedelta(seconds=delay))
        return Outcome(Verdict.DEFERRED, later, f"was running when its process died ({count})")

    # -- once it ran -------------------------------------------------------------------------

    def done(self, envelope: Envelope, value: Any, started: float) -> Outcome:
        """A run that returned `value`; a chain link whose value cannot be passed on is dead
        (the chain stops there: it ran, and a retry would return the same)."""
        if envelope.chain is not None and (unpassable := chains.unpassable(envelope, value)):
            return self.dead(envelope, "UnpassableResult", unpassable)
        ran = time.perf_counter() - started
        # Positional (reason, duration, value): keywords cost every job 1,200 instructions more.
        return Outcome(Verdict.DONE, envelope, "", ran, value)

    def failed(self, envelope: Envelope, exc: Exception, duration: float) -> Outcome:
        if isinstance(exc, Snooze):
            return self.snoozed(envelope, exc, duration)
        if isinstance(exc, Parked):
            return self.parked(envelope, exc, duration)
        if isinstance(exc, Superseded):
            log.info("job copy superseded", **fields(envelope), reason=str(exc))
            return Outcome(Verdict.SUPERSEDED, envelope, str(exc), duration)
        error = JobError.from_exception(exc, self.worker, now=self.clock())
        failed = envelope.failed_with(error)
        if envelope.retry.exhausted(envelope.attempt):
            self.app.hooks.emit("on_failure", failed, error, None)
            reason = f"failed {envelope.attempt} of {envelope.retry.max_attempts} attempts"
            self.app.hooks.emit("on_dead", failed, reason)
            return Outcome(Verdict.DEAD, failed, reason, duration)
        delay = envelope.retry.delay(envelope.attempt)
        self.app.hooks.emit("on_failure", failed, error, delay)
        retry = failed.replace(
            attempt=envelope.attempt + 1, run_at=error.failed_at + timedelta(seconds=delay)
        )
        return Outcome(Verdict.RETRY, retry, duration=duration)

    def snoozed(self, envelope: Envelope, snooze: Snooze, duration: float) -> Outcome:
        """Put off with its attempt unchanged; dead once it snoozed its max_snoozes times."""
        limit = self.app.jobs[envelope.type].max_snoozes
        if envelope.snoozes >= limit:
            message = f"snoozed {envelope.snoozes} times already, its max_snoozes is {limit}"
            return replace(self.dead(envelope, "TooManySnoozes", message), duration=duration)
        later = snooze.applied_to(envelope, self.clock())
        log.info("job snoozed", **fields(envelope), snoozes=later.snoozes, run_at=str(later.run_at))
        return Outcome(Verdict.SNOOZED, later, duration=duration)

    @staticmethod
    def parked(envelope: Envelope, parked: Parked, duration: float) -> Outcome:
        """A durable job asleep (workflows/durable.py): due again at its wake-up, its attempt
        unchanged."""
        later = envelope.replace(run_at=parked.until)
        log.info("job parked", **fields(envelope), run_at=str(later.run_at))
        return Outcome(Verdict.PARKED, later, duration=duration)

    @staticmethod
    def cancelled(envelope: Envelope) -> Outcome:
        log.info("job cancelled", job_id=envelope.id, job_type=envelope.type, queue=envelope.queue)
        return Outcome(Verdict.CANCELLED, envelope, "cancelled")

    def dead(self, envelope: Envelope, error_type: str, message: str) -> Outcome:
        """A job that no retry can help: dead-lettered at once."""
        error = JobError(
            type=f"pulsarjobs.{error_type}",
            message=message,
            traceback="",
            failed_at=self.clock(),
            worker=self.worker,
        )
        failed = envelope.failed_with(error)
        self.app.hooks.emit("on_dead", failed, f"{error_type}: {message}")
        return Outcome(Verdict.DEAD, failed, f"{error_type}: {message}")
