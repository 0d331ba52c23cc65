"""The run stage of the pipeline (pipeline.py): a job's bound run, in its own context.

A run's own hooks (`around_process`, `before_process`, `after_process`) run where the job runs
and in its context: on the event loop for an async job, on the job's thread for a sync one. The
Judge (judge.py) turns how the run ended into its verdict.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import time
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from pulsarjobs.errors import JobTimeout
from pulsarjobs.wire.envelope import Envelope
from pulsarjobs.wire.verdicts import Outcome
from pulsarjobs.worker._running import CurrentRuns, Run
from pulsarjobs.worker.judge import Judge, Work
from pulsarjobs.worker.progress import CurrentJob

if TYPE_CHECKING:
    from pulsarjobs.app_view import AppView

_current: contextvars.ContextVar[Run] = contextvars.ContextVar("pulsarjobs_current_job")


def current_job() -> CurrentJob:
    """The job running in this task or thread: its envelope's fields, and `progress(...)`."""
    try:
        return CurrentJob(_current.get())
    except LookupError:
        raise RuntimeError("current_job() is only available inside a running job") from None


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
        self, app: AppView, judge: Judge, running: CurrentRuns, threads: Executor | None = None
    ) -> None:
        self.app = app
        self.judge = judge
        self.running = running  # what runs now (a cancel stops it), for heartbeats too
        self.threads = threads  # where sync jobs run when not on a runner thread of their own

    async def run(self, work: Work, envelope: Envelope, task: asyncio.Task[Any] | None) -> Outcome:
        """Run on the event loop: an async job here, a sync one on the thread pool. `task`: the
        task awaiting this, when the caller knows it (else it is looked up: a cancel stops it)."""
        started = time.perf_counter()
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
        judge = self.judge
        try:
            if envelope.timeout is None:
                value = await running
            else:
                value = await self._within_timeout(running, envelope)
        except asyncio.CancelledError:
            if not (run.interrupted and uncancel(run) == 0):
                raise  # not (only) its cancel: the worker is shutting down
            return judge.cancelled(envelope)
        except Exception as exc:
            if not run.cancelled:
                return judge.failed(envelope, exc, time.perf_counter() - started)
        finally:
            self.running.end(run)
            if not isinstance(work, functools.partial):
                work.close()  # never awaited when a hook failed first
        if run.cancelled:
            if run.interrupted:
                uncancel(run)  # the job caught the cancellation and ended anyway
            return judge.cancelled(envelope)
        return judge.done(envelope, value, started)

    def run_here(self, work: functools.partial[Any], envelope: Envelope) -> Outcome:
        """Run a sync job on this very thread, a runner thread: no hand-over, unless it has a
        timeout (a thread cannot be interrupted, so it runs on the pool and is abandoned when
        late)."""
        started = time.perf_counter()
        run = Run(envelope, started, None)
        context = job_context(run)
        call = work if self.app.hooks.runs_bare else self._with_hooks(work, envelope)
        self.running.start(run)
        judge = self.judge
        try:
            if envelope.timeout is None:
                value = context.run(call)
            else:
                assert self.threads is not None
                running = self.threads.submit(context.run, call)
                try:
                    value = running.result(timeout=envelope.timeout)
                except concurrent.futures.TimeoutError:
                    if not running.done():
                        raise timed_out(envelope) from None
                    raise  # the job's own TimeoutError: an ordinary failure
        except Exception as exc:
            if not run.cancelled:
                return judge.failed(envelope, exc, time.perf_counter() - started)
        finally:
            self.running.end(run)
        if run.cancelled:  # while it ran: a thread cannot be stopped, its result is discarded
            return judge.cancelled(envelope)
        return judge.done(envelope, value, started)

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
