"""Durable jobs: a job of several steps whose completed steps are not run again (issue #26).

A job declared `@app.job(durable=True)` takes a `Durable` context as its first parameter, which
the worker passes (enqueue takes the other arguments). `await ctx.step(name, fn, *args)` runs
`fn` once: its return value is stored on the broker (durable_store.py) before the step returns,
and a later run of the same job — a retry, a run after its worker died, after a sleep — gets
the stored value back without running `fn`. `await ctx.sleep(delay)` stores its wake-up time
and ends the run with the PARKED verdict (wire/verdicts.py, through the Judge): the job is
stored on the retry topic due at its wake-up, its attempt unchanged, and goes on past the
sleep when it runs again. A sync job calls `step_sync` and `sleep_sync`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from pulsarjobs.snooze import Snooze
from pulsarjobs.wire.values import Unencodable
from pulsarjobs.workflows.durable_store import StepKind, StepStore, decode_step, encode_step

if TYPE_CHECKING:
    from pulsarjobs.clock import Clock
    from pulsarjobs.jobs import Job
    from pulsarjobs.wire.envelope import Envelope

_MISSING = object()


class Parked(Exception):
    """Raised by `Durable.sleep`: the run ends here, and the job runs again at `until` (the
    PARKED verdict). Do not catch it: as with Snooze, the worker must see it."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"parked until {until.isoformat()}")
        self.until = until


class DurableApp(Protocol):
    """What a durable job's runs use of its App: its clock and where steps are stored."""

    @property
    def clock(self) -> Clock: ...

    @property
    def step_store(self) -> StepStore: ...


class Durable:
    """A durable job's context, its first parameter: its steps and its sleeps. Steps must be
    called in the same order in every run, each under a name of its own."""

    def __init__(
        self, job_id: str, store: StepStore, clock: Clock, stored: Mapping[str, bytes]
    ) -> None:
        self.job_id = job_id
        self._store = store
        self._clock = clock
        self._stored = dict(stored)  # this job's completed steps and sleeps, by name
        self._named: set[str] = set()  # the names used in this run
        self._sleeps = 0

    @classmethod
    def open(cls, app: DurableApp, job_id: str) -> Durable:
        """The context of a run, with every step stored for the job read (blocks)."""
        store = app.step_store
        return cls(job_id, store, app.clock, store.read(job_id))

    @classmethod
    async def open_async(cls, app: DurableApp, job_id: str) -> Durable:
        store = app.step_store
        return cls(job_id, store, app.clock, await asyncio.to_thread(store.read, job_id))

    # -- steps -------------------------------------------------------------------------------

    async def step(self, name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)`'s value (awaited if it is awaitable), once it is stored; in a
        later run of the job, the stored value, without calling `fn`. The value must be what a
        job argument may be, and comes back as one (a tuple as a list)."""
        if (value := self._replayed(name)) is not _MISSING:
            return value
        started = self._clock()
        value = fn(*args, **kwargs)
        if inspect.isawaitable(value):
            value = await value
        value, stored = self._keep(name, value, started)
        await asyncio.wrap_future(stored)
        return value

    def step_sync(self, name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """`step` in a sync (`def`) job: `fn` must be a plain function."""
        if (value := self._replayed(name)) is not _MISSING:
            return value
        started = self._clock()
        value = fn(*args, **kwargs)
        if inspect.isawaitable(value):
            if isinstance(value, Coroutine):
                value.close()
            raise TypeError(f"step {name!r}: step_sync cannot await; use `await ctx.step`")
        value, stored = self._keep(name, value, started)
        stored.result()
        return value

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


def durable_run(
    app: DurableApp, job: Job[Any, Any], current: Callable[[], Envelope]
) -> Callable[..., Any]:
    """What the worker calls for a durable job, with the caller's arguments: the job's own
    function, its context first. `current` gives the envelope of the run (the job's id)."""
    handler = job.handler
    if job.is_async:

        async def run_async(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            context = await Durable.open_async(app, current().id)
            return await handler(context, *args, **kwargs)

        def start(*args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
            job.check_arguments(args, kwargs)  # as calling the `async def` would bind them
            return run_async(args, kwargs)

        return start

    def run(*args: Any, **kwargs: Any) -> Any:
        return handler(Durable.open(app, current().id), *args, **kwargs)

    return run
