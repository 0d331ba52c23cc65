"""Running one delivery of a job and deciding what becomes of it.

The worker and the in-memory test runner both go through the JobExecutor, so retries, dead
letters, expiry and never-early behave the same in users' unit tests as on the broker.

A run's own hooks (`around_process`, `before_process`, `after_process`) run where the job runs
and in its context: on the event loop for an async job, on the job's thread for a sync one. The
verdict hooks (`on_failure`, `on_dead`, `on_expired`) run where the run is settled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import random
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from concurrent.futures import Executor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from pulsarjobs.clock import Clock, utc_now
from pulsarjobs.errors import JobTimeout
from pulsarjobs.logs import error_text, fields
from pulsarjobs.snooze import Snooze
from pulsarjobs.wire.envelope import Envelope, JobError
from pulsarjobs.wire.verdicts import Outcome, Verdict
from pulsarjobs.worker._running import CurrentRuns, Run
from pulsarjobs.worker.crashes import CRASHES_BEFORE_DEAD, DEFER_SECONDS, Crashes, CrashGuard
from pulsarjobs.worker.progress import CurrentJob
from pulsarjobs.workflows import chains

if TYPE_CHECKING:
    import pulsar

    from pulsarjobs.app_view import AppView
    from pulsarjobs.flow.limits import LimitSlots
    from pulsarjobs.jobs import Job

Work = Coroutine[Any, Any, Any] | functools.partial[Any]  # an async run, or a sync call

log = structlog.get_logger("pulsarjobs.execution")

_current: contextvars.ContextVar[Run] = contextvars.ContextVar("pulsarjobs_current_job")


def current_job() -> CurrentJob:
    """The job running in this task or thread: its envelope's fields, and `progress(...)`."""
    try:
        return CurrentJob(_current.get())
    except LookupError:
        raise RuntimeError("current_job() is only available inside a running job") from None


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


@types.coroutine  # awaitable as it is: no object with an __await__ to make per job
def in_context(
    coroutine: Coroutine[Any, Any, Any], context: contextvars.Context
) -> Generator[Any, Any, Any]:
    """Awaits a coroutine with each of its steps run in `context`, as a Task would, but
    within the awaiting task: a Task per job costs a loop turn and its scheduling."""
    step: Callable[..., Any] = coroutine.send
    argument: Any = None
    while True:
        try:
            waiting_for = context.run(step, argument)
        except StopIteration as returned:
            return returned.value
        try:  # the task waits for what the job waits for, and hands back its outcome
            argument, step = (yield waiting_for), coroutine.send
        except BaseException as exc:  # cancellation too goes on to the job
            argument, step = exc, coroutine.throw


class JobExecutor:
    def __init__(
        self,
        app: AppView,
        worker: str,
        threads: Executor | None = None,
        clock: Clock = utc_now,
        on_start: Callable[[Envelope], None] | None = None,
        crashes: CrashGuard | None = None,
    ) -> None:
        self.app = app
        self.worker = worker
        self.threads = threads  # where sync jobs run when not on a runner thread of their own
        self.clock = clock
        self.on_start = on_start  # told of each job about to run (metrics), if anyone asks
        self.running = CurrentRuns(crashes)  # what runs now, and the cancelled job ids
        self.crashes = crashes  # in a group of processes: jobs that were running in dead ones
        self.slots: LimitSlots | None = None  # concurrency limits (limits.py), in a worker

    async def run(self, envelope: Envelope, task: asyncio.Task[Any] | None = None) -> Outcome:
        """Run on the event loop: an async job here, a sync one on the thread pool. `task`: the
        task awaiting this, when the caller knows it (else it is looked up: a cancel stops it)."""
        verdict = self.verdict_before(envelope)
        if isinstance(verdict, Outcome):
            return verdict
        slot = None
        if envelope.limit_key is not None and self.slots is not None:
            slot = await self.slots.take_async(envelope)  # waits its turn, unacknowledged
            if slot is not None and (called_off := self._waited(envelope, slot)) is not None:
                if not isinstance(verdict, functools.partial):
                    verdict.close()
                return called_off
        if self.on_start is not None:
            self.on_start(envelope)
        work, started = verdict, time.perf_counter()
        if isinstance(work, functools.partial):
            task = None
        elif task is None:
            task = asyncio.current_task()
        run = Run(envelope, started, task)
        context = job_context(run)
        self.running.start(run)  # before it starts
        running: Awaitable[Any]
        if isinstance(work, functools.partial):
            call = functools.partial(context.run, self._with_hooks(work, envelope))
            running = asyncio.get_running_loop().run_in_executor(self.threads, call)
        else:
            bare = self.app.hooks.runs_bare  # then the job's own coroutine is all there is
            running = in_context(work if bare else self._body_async(work, envelope), context)
        try:
            if envelope.timeout is None:
                value = await running
            else:
                value = await self._within_timeout(running, envelope)
        except asyncio.CancelledError:
            if not (run.interrupted and uncancel(run) == 0):
                raise  # not (only) its cancel: the worker is shutting down
            return self.cancelled(envelope)
        except Exception as exc:
            if not run.cancelled:
                return self.failed(envelope, exc, time.perf_counter() - started)
        finally:
            self.running.end(run)
            if not isinstance(work, functools.partial):
                work.close()  # never awaited when a hook failed first
            if slot is not None:
                self.give_slot(envelope, slot)
        if run.cancelled:
            if run.interrupted:
                uncancel(run)  # the job caught the cancellation and ended anyway
            return self.cancelled(envelope)
        return self.done(envelope, value, started)

    def run_here(self, envelope: Envelope) -> Outcome:
        """Run a sync job on this very thread, a runner thread: no hand-over, unless it has a
        timeout (a thread cannot be interrupted, so it runs on the pool and is abandoned when
        late)."""
        verdict = self.verdict_before(envelope)
        if isinstance(verdict, Outcome):
            return verdict
        assert isinstance(verdict, functools.partial)
        slot = None
        if envelope.limit_key is not None and self.slots is not None:
            slot = self.slots.take(envelope)  # waits its turn, unacknowledged
            if slot is not None and (called_off := self._waited(envelope, slot)) is not None:
                return called_off
        if self.on_start is not None:
            self.on_start(envelope)
        started = time.perf_counter()
        run = Run(envelope, started, None)
        context = job_context(run)
        self.running.start(run)
        try:
            if envelope.timeout is None:
                value = context.run(self._with_hooks(verdict, envelope))
            else:
                assert self.threads is not None
                running = self.threads.submit(context.run, self._with_hooks(verdict, envelope))
                try:
                    value = running.result(timeout=envelope.timeout)
                except concurrent.futures.TimeoutError:
                    if not running.done():
                        raise timed_out(envelope) from None
                    raise  # the job's own TimeoutError: an ordinary failure
        except Exception as exc:
            if not run.cancelled:
                return self.failed(envelope, exc, time.perf_counter() - started)
        finally:
            self.running.end(run)
            if slot is not None:
                self.give_slot(envelope, slot)
        if run.cancelled:  # while it ran: a thread cannot be stopped, its result is discarded
            return self.cancelled(envelope)
        return self.done(envelope, value, started)

    def done(self, envelope: Envelope, value: Any, started: float) -> Outcome:
        """A run that returned `value`; a chain link whose value cannot be passed on is dead
        (the chain stops there: it ran, and a retry would return the same)."""
        if envelope.chain is not None and (unpassable := chains.unpassable(envelope, value)):
            return self.dead(envelope, "UnpassableResult", unpassable)
        return Outcome(Verdict.DONE, envelope, duration=time.perf_counter() - started, value=value)

    def _waited(self, envelope: Envelope, slot: pulsar.Message) -> Outcome | None:
        """Once a slot came: the job's outcome if it was cancelled or expired meanwhile (its
        slot then goes back at once)."""
        called_off = self.called_off(envelope, self.clock())
        if called_off is not None:
            self.give_slot(envelope, slot)
        return called_off

    def give_slot(self, envelope: Envelope, slot: pulsar.Message) -> None:
        assert self.slots is not None
        try:
            self.slots.give(envelope, slot)
        except Exception as exc:  # a closed consumer gave it back already
            log.warning(
                "could not give back a slot", limit_key=envelope.limit_key, error=error_text(exc)
            )

    def verdict_before(self, envelope: Envelope) -> Outcome | Work:
        """What becomes of a job that must not run (expired, early, unknown, arguments that do
        not fit), else its work, ready to run."""
        # The clock is read only for a job with something to check: most have nothing.
        if self.running.cancelled or envelope.expires_at is not None:  # else nothing to call off
            called_off = self.called_off(envelope, self.clock())
            if called_off is not None:
                return called_off
        if envelope.run_at is not None and envelope.run_at > self.clock():
            return Outcome(Verdict.EARLY, envelope)  # the broker let it out early: never run it so
        if self.crashes is not None and (crashes := self.crashes.of(envelope.id)) is not None:
            after_crash = self.after_crashes(envelope, crashes)
            if after_crash is not None:
                return after_crash
        job = self.app.jobs.get(envelope.type)
        if job is None:
            return self.dead(envelope, "UnknownJobType", f"no job {envelope.type!r} is declared")
        try:
            return bind(job, envelope)
        except TypeError as exc:
            return self.dead(envelope, "BadArguments", f"{envelope.type}{job.signature}: {exc}")

    def called_off(self, envelope: Envelope, now: datetime) -> Outcome | None:
        """Cancelled or expired: a job that was to run must not (checked again once a limited
        job got its slot)."""
        cancelled = self.running.cancelled
        if cancelled and (at := cancelled.get(envelope.id)) and envelope.created_at <= at:
            return self.cancelled(envelope)
        if envelope.expires_at is not None and envelope.expires_at <= now:
            self.app.hooks.emit("on_expired", envelope)
            return Outcome(Verdict.EXPIRED, envelope)
        return None

    def _with_hooks(self, work: functools.partial[Any], envelope: Envelope) -> Callable[[], Any]:
        """A sync run as it is to be called: the job alone when no middleware listens."""
        if self.app.hooks.runs_bare:
            return work
        return functools.partial(self._body, work, envelope)

    def _body(self, work: functools.partial[Any], envelope: Envelope) -> Any:
        """A sync run with its hooks, in the job's context, on the thread that runs it."""
        hooks, started = self.app.hooks, time.perf_counter()
        with hooks.around_process(envelope):
            hooks.emit("before_process", envelope)
            value = work()
        hooks.emit("after_process", envelope, time.perf_counter() - started)
        return value

    async def _body_async(self, work: Coroutine[Any, Any, Any], envelope: Envelope) -> Any:
        hooks, started = self.app.hooks, time.perf_counter()
        with hooks.around_process(envelope):
            hooks.emit("before_process", envelope)
            value = await work
        hooks.emit("after_process", envelope, time.perf_counter() - started)
        return value

    @staticmethod
    async def _within_timeout(running: Awaitable[Any], envelope: Envelope) -> Any:
        assert envelope.timeout is not None
        deadline = asyncio.timeout(envelope.timeout)
        try:
            async with deadline:
                return await running
        except TimeoutError:
            if not deadline.expired():
                raise  # the job's own TimeoutError: an ordinary failure
            # An async run is cancelled; a thread cannot be, so a sync run is abandoned.
            raise timed_out(envelope) from None

    def failed(self, envelope: Envelope, exc: Exception, duration: float) -> Outcome:
        if isinstance(exc, Snooze):
            return self.snoozed(envelope, exc, duration)
        error = JobError.from_exception(exc, self.worker, now=self.clock())
        failed = envelope.replace(last_error=error)
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

    def after_crashes(self, envelope: Envelope, crashes: Crashes) -> Outcome | None:
        """What becomes of a job that was running when worker processes died: dead once it
        was there CRASHES_BEFORE_DEAD times; put back once after each death, to run beside
        other jobs next time; else (None) it runs."""
        count, last_death = crashes
        if count >= CRASHES_BEFORE_DEAD:
            reason = f"killed its worker process {count} times"
            error = JobError("pulsarjobs.KilledWorker", reason, "", self.clock(), self.worker)
            dead = envelope.replace(last_error=error)
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
        failed = envelope.replace(last_error=error)
        self.app.hooks.emit("on_dead", failed, f"{error_type}: {message}")
        return Outcome(Verdict.DEAD, failed, f"{error_type}: {message}")


def uncancel(run: Run) -> int:
    """Take back the cancellation of the run's task; how many others are still pending."""
    assert run.task is not None
    return run.task.uncancel()


def job_context(run: Run) -> contextvars.Context:
    """A context of the job's own: what it (or a hook) sets there stays with that job."""
    context = contextvars.copy_context()
    context.run(_current.set, run)
    return context


def timed_out(envelope: Envelope) -> JobTimeout:
    return JobTimeout(f"{envelope.type} ran longer than its timeout of {envelope.timeout:g} s")
