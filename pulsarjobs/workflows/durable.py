"""Durable jobs: a job of several steps whose completed steps are not run again (issue #26).

A job declared `@app.job(durable=True)` takes a `Durable` context as its first parameter, which
the worker passes (enqueue takes the other arguments). `await ctx.step(name, fn, *args)` runs
`fn` once: its return value is stored on the broker (durable_store.py) before the step returns,
and a later run of the same job — a retry, a run after its worker died, after a sleep — gets
the stored value back without running `fn`. `await ctx.sleep(delay)` stores its wake-up time
and ends the run with the PARKED verdict (wire/verdicts.py, through the Judge): the job is
stored on the retry topic due at its wake-up, its attempt unchanged, and goes on past the
sleep when it runs again. `await ctx.wait_for(key)` parks the job until `app.signal(key, ...)`
or its timeout (signals.py), and returns the signal's payload; `ctx.child` and `ctx.gather`
enqueue child jobs and wait for their outcomes the same way; `ctx.iterate` works through a long
collection from its last stored position (iteration.py). Each has a `_sync` twin for `def` jobs.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from pulsarjobs.app_view import AppView
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.snooze import Snooze
from pulsarjobs.wire.envelope import encode
from pulsarjobs.wire.values import Unencodable
from pulsarjobs.workflows.durable_errors import ChildFailed, Parked, Superseded, WaitTimedOut
from pulsarjobs.workflows.durable_store import StepKind, StepStore, decode_step, encode_step
from pulsarjobs.workflows.iteration import (
    ITERATE_EVERY,
    ITERATE_SECONDS,
    ItemsAfter,
    Position,
    Stopped,
    ThisRun,
    iterate_async,
    iterate_sync,
)
from pulsarjobs.workflows.signals import (
    CHILD_KEEP,
    PARENT_META,
    TIMED_OUT,
    SignalBoard,
    Waiting,
    by_signal,
    child_key,
    goes_on,
    lineage_of,
)

if TYPE_CHECKING:
    from pulsarjobs.jobs import Job, JobCall
    from pulsarjobs.wire.envelope import Envelope

_MISSING = object()
DEFAULT_WAIT_TIMEOUT = timedelta(days=7)  # how long `wait_for` waits unless told


class RunOfJob(ThisRun, Protocol):
    """The run a durable job's context is for (a `CurrentJob`)."""

    @property
    def envelope(self) -> Envelope: ...


class DurableApp(AppView, Protocol):
    """What a durable job's runs use of its App: that of every feature, and its steps."""

    @property
    def step_store(self) -> StepStore: ...

    @property
    def signals(self) -> SignalBoard: ...


class Durable:
    """A durable job's context, its first parameter: its steps, sleeps, waits, child jobs and
    iterations. They must be called in the same order in every run, each under a name of its
    own."""

    def __init__(self, app: DurableApp, run: RunOfJob, stored: Mapping[str, bytes]) -> None:
        job = run.envelope
        self.job_id = job.id
        self._job = job
        self._run = run
        self._app = app
        self._store = app.step_store
        self._clock = app.clock
        self._stored = dict(stored)  # this job's completed steps, sleeps and waits, by name
        self._named: set[str] = set()  # the names used in this run
        self._sleeps = 0
        self._waits = 0
        self._children = 0

    @classmethod
    def open(cls, app: DurableApp, run: RunOfJob) -> Durable:
        """The context of a run, with every step stored for the job read (blocks)."""
        return cls(app, run, app.step_store.read(run.envelope.id))

    @classmethod
    async def open_async(cls, app: DurableApp, run: RunOfJob) -> Durable:
        return cls(app, run, await asyncio.to_thread(app.step_store.read, run.envelope.id))

    # -- steps -------------------------------------------------------------------------------

    async def step(
        self, name: str, fn: Callable[..., Any], /, *args: Any,
        retry: RetryPolicy | None = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """`fn(*args, **kwargs)`'s value (awaited if it is awaitable), once it is stored; in a
        later run of the job, the stored value, without calling `fn`. The value must be what a
        job argument may be, and comes back as one (a tuple as a list). With `retry`, a step
        that raises is tried again by the job parked until its backoff is over (the job's own
        attempt unchanged), until the step's attempts are used up: then it fails the run."""
        if (value := self._replayed(name)) is not _MISSING:
            return value
        started = self._clock()
        try:
            value = fn(*args, **kwargs)
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            await asyncio.to_thread(self._failed, name, exc, retry)
            raise
        value, stored = self._keep(name, value, started)
        await asyncio.wrap_future(stored)
        return value

    def step_sync(
        self, name: str, fn: Callable[..., Any], /, *args: Any,
        retry: RetryPolicy | None = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """`step` in a sync (`def`) job: `fn` must be a plain function."""
        if (value := self._replayed(name)) is not _MISSING:
            return value
        started = self._clock()
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:
            self._failed(name, exc, retry)
            raise
        if inspect.isawaitable(value):
            if isinstance(value, Coroutine):
                value.close()
            raise TypeError(f"step {name!r}: step_sync cannot await; use `await ctx.step`")
        value, stored = self._keep(name, value, started)
        stored.result()
        return value

    def _failed(self, name: str, exc: Exception, retry: RetryPolicy | None) -> None:
        """A step raised: with attempts of its own left, park the job until its backoff is over
        (the count stored first); else return, and the error fails the run."""
        if retry is None:
            return
        tries = f"{name}.tries"
        failed = 1 + (decode_step(self._stored[tries]) if tries in self._stored else 0)
        if retry.exhausted(failed):
            return
        self._keep(tries, failed, kind="internal")[1].result()
        due = self._clock() + timedelta(seconds=retry.delay(failed))
        raise Parked(due) from exc

    def _replayed(self, name: str) -> Any:
        if name in self._named:
            raise ValueError(f"step {name!r} is used twice in one run: each needs its own name")
        self._named.add(name)
        data = self._stored.get(name)
        return _MISSING if data is None else decode_step(data)

    def _keep(
        self, name: str, value: Any, started: datetime | None = None, kind: StepKind = "step"
    ) -> tuple[Any, Future[None]]:
        """The value as it comes back from the broker, and the future of its storing."""
        try:
            data = encode_step(value, self._clock(), started, kind)
        except Unencodable as exc:
            raise exc.to_argument_error(f"step {name!r}'s return value") from None
        self._stored[name] = data
        return decode_step(data), self._store.write(self.job_id, name, data)

    # -- sleeps ------------------------------------------------------------------------------

    async def sleep(self, delay: timedelta | float, name: str | None = None) -> None:
        """Sleep without holding the worker: the run ends here (PARKED) and the job runs
        again once `delay` (a timedelta, or seconds) is over, past this sleep."""
        wake_at, stored = self._sleep(delay, name)
        if stored is not None:
            await asyncio.wrap_future(stored)
        if wake_at is not None:
            raise Parked(wake_at)

    def sleep_sync(self, delay: timedelta | float, name: str | None = None) -> None:
        """`sleep` in a sync (`def`) job."""
        wake_at, stored = self._sleep(delay, name)
        if stored is not None:
            stored.result()
        if wake_at is not None:
            raise Parked(wake_at)

    def _sleep(
        self, delay: timedelta | float, name: str | None
    ) -> tuple[datetime | None, Future[None] | None]:
        """When the job is to wake (None: the sleep is over) and the storing of it, if new."""
        self._sleeps += 1
        name = f"sleep-{self._sleeps}" if name is None else name
        now = self._clock()
        stored = self._replayed(name)
        if stored is not _MISSING:
            wake_at = datetime.fromtimestamp(stored / 1000, now.tzinfo)
            return (None if wake_at <= now else wake_at), None
        wake_at = Snooze(delay).due(now)  # never before the time asked for, to the millisecond
        millis = round(wake_at.timestamp() * 1000)
        _, storing = self._keep(name, millis, kind="sleep")
        return wake_at, storing

    # -- waits for a signal ------------------------------------------------------------------

    async def wait_for(
        self, key: str, timeout: timedelta | float = DEFAULT_WAIT_TIMEOUT, name: str | None = None
    ) -> Any:
        """The payload of the signal `key` (`app.signal`): one kept from before, or the next.
        Until it comes the job is parked, holding no worker; WaitTimedOut after `timeout`."""
        return await asyncio.to_thread(self.wait_for_sync, key, timeout, name)

    def wait_for_sync(
        self, key: str, timeout: timedelta | float = DEFAULT_WAIT_TIMEOUT, name: str | None = None
    ) -> Any:
        """`wait_for` in a sync (`def`) job."""
        self._waits += 1
        name = f"wait-{self._waits}" if name is None else name
        self._replayed(name)  # the name is this wait's
        deadline = self._deadline(name, timeout)
        claim = f"{name}.claim"  # the copy of the job that went on past the wait
        if name not in self._stored or claim not in self._stored:
            self._settle(key, name, claim, deadline)
        if not goes_on(decode_step(self._stored[claim]), lineage_of(self._job), name):
            raise Superseded(f"wait {name!r} was passed by another copy of job {self.job_id}")
        outcome = decode_step(self._stored[name])
        if outcome == TIMED_OUT:
            raise WaitTimedOut(key, deadline)
        return outcome["signal"]

    # -- iteration ---------------------------------------------------------------------------

    async def iterate(
        self, name: str, items_after: ItemsAfter, every: int = ITERATE_EVERY,
        seconds: float = ITERATE_SECONDS,
    ) -> AsyncIterator[Any]:  # fmt: skip
        """The items `items_after(cursor)` gives — `(cursor, item)` pairs, from an iterable or
        an async iterable; each cursor the position past its item — from where the job's last
        run stored its position (iteration.py): every `every` items or `seconds` seconds, when
        its worker is asked to stop (the run then ends, to go on elsewhere), and at the end."""
        try:
            async for item in iterate_async(self._position(name, every, seconds), items_after):
                yield item
        except Stopped:
            raise Parked(self._clock()) from None

    def iterate_sync(
        self, name: str, items_after: ItemsAfter, every: int = ITERATE_EVERY,
        seconds: float = ITERATE_SECONDS,
    ) -> Iterator[Any]:  # fmt: skip
        """`iterate` in a sync (`def`) job: `items_after` gives a plain iterable."""
        try:
            yield from iterate_sync(self._position(name, every, seconds), items_after)
        except Stopped:
            raise Parked(self._clock()) from None

    def _position(self, name: str, every: int, seconds: float) -> Position:
        stored = self._replayed(name)

        def keep(position: Any) -> Future[None]:
            return self._keep(name, position, kind="cursor")[1]

        found = None if stored is _MISSING else stored
        return Position(name, found, keep, self._run, every, seconds)

    # -- child jobs --------------------------------------------------------------------------

    async def child(self, call: JobCall, timeout: timedelta | float = DEFAULT_WAIT_TIMEOUT) -> Any:
        """Enqueue `call` as a child job and return its value once it is done, parked until
        then; ChildFailed if it is over without succeeding, WaitTimedOut after `timeout`."""
        return await asyncio.to_thread(self.child_sync, call, timeout)

    def child_sync(self, call: JobCall, timeout: timedelta | float = DEFAULT_WAIT_TIMEOUT) -> Any:
        """`child` in a sync (`def`) job."""
        return self._child_value(*self._send_child(call), timeout)

    async def gather(
        self, *calls: JobCall, timeout: timedelta | float = DEFAULT_WAIT_TIMEOUT
    ) -> list[Any]:
        """Enqueue every call as a child job, then return their values in call order; parked
        until they are done. ChildFailed for the first (in call order) that failed."""
        return await asyncio.to_thread(lambda: self.gather_sync(*calls, timeout=timeout))

    def gather_sync(
        self, *calls: JobCall, timeout: timedelta | float = DEFAULT_WAIT_TIMEOUT
    ) -> list[Any]:
        """`gather` in a sync (`def`) job."""
        sent = [self._send_child(call) for call in calls]  # all run while it waits for the first
        return [self._child_value(name, child_id, timeout) for name, child_id in sent]

    def _send_child(self, call: JobCall) -> tuple[str, str]:
        """Enqueue a child once (the name of its wait, its job id): a later run finds it sent."""
        self._children += 1
        name = f"child-{self._children}"
        child_id, sent = f"{self.job_id}.{name}", f"{name}.sent"
        if sent not in self._stored:
            app = self._app
            envelope = app.envelope(call.with_options(job_id=child_id))
            envelope = app.hooks.before_enqueue(envelope.replace(
                keep_result=max(envelope.keep_result or 0.0, CHILD_KEEP.total_seconds()),
                meta={**envelope.meta, PARENT_META: self.job_id}))  # fmt: skip
            app.publish_envelope(envelope).result()
            app.hooks.emit("after_enqueue", envelope)
            self._keep(sent, child_id, kind="internal")[1].result()
        return name, child_id

    def _child_value(self, name: str, child_id: str, timeout: timedelta | float) -> Any:
        told = self.wait_for_sync(child_key(child_id), timeout, name)
        if "error" in told:
            raise ChildFailed(child_id, told["error"])
        return told["value"]

    def _deadline(self, name: str, timeout: timedelta | float) -> datetime:
        """When the wait times out: as its first run stored it."""
        until = f"{name}.until"
        stored = self._stored.get(until)
        if stored is not None:
            return datetime.fromtimestamp(decode_step(stored) / 1000, self._clock().tzinfo)
        deadline = Snooze(timeout).due(self._clock())
        self._keep(until, round(deadline.timestamp() * 1000), kind="internal")[1].result()
        return deadline

    def _settle(self, key: str, name: str, claim: str, deadline: datetime) -> None:
        """Under the wait's lock: end the wait (a kept signal, the timeout) or park the job
        until it ends, then claim it for this copy unless another copy did."""
        signals, job_id = self._app.signals, self.job_id
        with signals.locked(job_id, name):
            self._stored.update(self._store.read(job_id))  # what others stored since
            if claim in self._stored:
                return
            if name not in self._stored:
                if self._clock() >= deadline:
                    self._keep(name, TIMED_OUT, kind="wait")[1].result()
                else:
                    # Registered first, then a kept signal looked for: a signal stored meanwhile
                    # is seen here, or it sees this wait (signals.py).
                    parked = self._job.replace(run_at=deadline)
                    signals.wait(Waiting(job_id, name, key, encode(parked), deadline))
                    signal = signals.kept(key)
                    if signal is None:
                        raise Parked(deadline)
                    self._keep(name, by_signal(signal.payload), kind="wait")[1].result()
            signals.done_waiting(job_id, name)
            self._keep(claim, lineage_of(self._job), kind="internal")[1].result()


def durable_run(
    app: DurableApp, job: Job[Any, Any], current: Callable[[], RunOfJob]
) -> Callable[..., Any]:
    """What the worker calls for a durable job, with the caller's arguments: the job's own
    function, its context first. `current` gives the run (`current_job`)."""
    handler = job.handler
    if job.is_async:

        async def run_async(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            context = await Durable.open_async(app, current())
            return await handler(context, *args, **kwargs)

        def start(*args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
            job.check_arguments(args, kwargs)  # as calling the `async def` would bind them
            return run_async(args, kwargs)

        return start

    def run(*args: Any, **kwargs: Any) -> Any:
        return handler(Durable.open(app, current()), *args, **kwargs)

    return run
