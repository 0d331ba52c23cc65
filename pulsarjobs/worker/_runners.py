"""Runners: where each job runs. They take the next job from the feed and carry it through the
pipeline (pipeline.py), which decides everything else.

`async def` jobs run on `concurrency` tasks of the worker's event loop; plain `def` jobs on
`concurrency` runner threads, each job on the thread that took it, as a bare receive loop would
run it — no hand-over to a pool and back. An all-sync app's runner threads take jobs from the
feed themselves. In an app with async jobs the loop's runners take every job in (a second
Python thread decoding beside the loop would make it wait at every acknowledgement) and hand a
sync one, with its slot, to the runner threads. A job is acknowledged only once what replaces
it is stored.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import pulsar
import structlog

from pulsarjobs.app_view import AppView
from pulsarjobs.worker._queue_feed import QueueFeed
from pulsarjobs.worker.feed import Feed
from pulsarjobs.worker.pipeline import Pipeline, SchemaNotCached, Taken

log = structlog.get_logger("pulsarjobs.runners")

RUNNER_TURN_S = 0.01  # a loop runner whose jobs never wait yields to the loop this often
IDLE_WAIT_S = 0.5  # an idle runner thread looks again this often, rung or not


class Slots:
    """At most `limit` jobs at once in an app with both kinds of job: `--concurrency` counts
    all of them. The loop's runners take a slot before they take a job; a sync job's slot goes
    with it to the runner threads, which give it back."""

    def __init__(self, limit: int) -> None:
        # A token per free slot: a list's pop and append are each whole under the GIL, so the
        # loop and the runner threads share them without a lock (two lock rounds per job).
        self._free = [True] * limit
        self._starved = False  # a loop runner waits for a slot
        self.on_free: Callable[[], None] = lambda: None  # rings the loop's runners

    def take(self) -> bool:
        try:
            self._free.pop()
        except IndexError:
            # A slot given back just before this rang nobody: the runner takes again after it
            # queued up to wait (LoopRunners._run_jobs), and gets it then.
            self._starved = True
            return False
        return True

    def give(self) -> None:
        self._free.append(True)
        if self._starved:  # only then: idle runners waiting for jobs stay asleep
            self._starved = False
            self.on_free()


class Runners:
    """What both kinds share: the feed they take from and the pipeline they carry jobs through."""

    kind: str  # as the worker's first log line says it

    def __init__(
        self,
        feed: Feed,
        pipeline: Pipeline,
        concurrency: int,
        loop: asyncio.AbstractEventLoop,
        slots: Slots | None = None,
    ) -> None:
        self.feed = feed
        self.pipeline = pipeline
        self.concurrency = concurrency
        self.loop = loop
        self.slots = slots

    @property
    def busy(self) -> int:
        """Jobs running now."""
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def wake_all(self) -> None:
        """Idle runners look again (and end, once the feed is closed); callable on the loop."""
        raise NotImplementedError

    async def finish(self, timeout: float) -> int:
        """Wait up to `timeout` for the running jobs to settle; hand back the late ones and
        return how many there were."""
        raise NotImplementedError


class LoopRunners(Runners):
    kind = "event loop"

    def __init__(self, *args: Any, threads: ThreadRunners | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threads = threads  # where sync jobs go, in an app with both kinds
        self._idle: deque[asyncio.Future[None]] = deque()  # runners waiting for a job
        self._tasks: list[asyncio.Task[None]] = []
        self._busy = 0  # counted on the loop only

    @property
    def busy(self) -> int:
        return self._busy

    def start(self) -> None:
        self.feed.doorbell = self._ring
        if self.slots is not None:
            self.slots.on_free = lambda: self._ring(1)
        self._tasks = [self.loop.create_task(self._run_jobs()) for _ in range(self.concurrency)]

    def wake_all(self) -> None:
        self._wake(0)

    async def finish(self, timeout: float) -> int:
        running = [task for task in self._tasks if not task.done()]
        if not running:
            return 0
        _, late = await asyncio.wait(running, timeout=timeout)
        for task in late:
            task.cancel()  # its job is handed back
        if late:
            await asyncio.wait(late, timeout=5.0)
        return len(late)

    def _ring(self, arrived: int) -> None:
        if self._idle:  # a runner going idle looks again after queueing up: no wake is lost
            self.loop.call_soon_threadsafe(self._wake, arrived)

    def _wake(self, count: int) -> None:
        count = count or len(self._idle)
        while count > 0 and self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                count -= 1

    def _next(self) -> tuple[QueueFeed, pulsar.Message] | None:
        """The next job, with a slot for it where slots are shared."""
        if self.slots is None:
            return self.feed.pick()
        if not self.slots.take():
            return None
        picked = self.feed.pick()
        if picked is None:
            self.slots.give()
        return picked

    async def _run_jobs(self) -> None:
        """One runner: the next job, by priority, until the feed closes."""
        loop, feed, task = self.loop, self.feed, asyncio.current_task()
        turn_ends = loop.time() + RUNNER_TURN_S
        while feed.open:
            picked = self._next()
            if picked is None:
                waiter = loop.create_future()
                self._idle.append(waiter)
                picked = self._next()  # a job that came just before we queued up rang nobody
                if picked is None:
                    await waiter
                    turn_ends = loop.time() + RUNNER_TURN_S
                    continue
                self._idle.remove(waiter)
            await self._handle(*picked, task)
            if loop.time() >= turn_ends:
                await asyncio.sleep(0)  # jobs that never wait would starve heartbeats, signals
                turn_ends = loop.time() + RUNNER_TURN_S

    async def _handle(
        self, queue: QueueFeed, message: pulsar.Message, task: asyncio.Task[None] | None
    ) -> None:
        pipeline, handed_over = self.pipeline, False
        self._busy += 1
        try:
            try:
                taken = pipeline.take_in(queue, message, may_block=False)
            except SchemaNotCached:  # once per topic and schema version
                taken = await self._take_in_off_loop(queue, message)
            if taken is None:
                return
            if self.threads is not None and pipeline.runs_on_threads(taken):
                self.threads.hand_over(taken)  # with its slot
                handed_over = True
                return
            await pipeline.carry_async(taken, task)  # hands the job back if it must
        finally:
            self._busy -= 1
            if self.slots is not None and not handed_over:
                self.slots.give()

    async def _take_in_off_loop(self, queue: QueueFeed, message: pulsar.Message) -> Taken | None:
        try:
            return await asyncio.to_thread(self.pipeline.take_in, queue, message)
        except asyncio.CancelledError:
            queue.give_back(message)  # shutdown ran out of time: hand it back
            raise


class ThreadRunners(Runners):
    kind = "threads"

    def __init__(self, *args: Any, from_loop: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.from_loop = from_loop  # jobs come from the loop's runners, not from the feed
        self._handed: deque[Taken] = deque()  # sync jobs the loop's runners took in
        self._bell = threading.Condition()  # rung when jobs arrive or a queue runs dry
        self._idle = 0  # runners waiting for the bell
        self._waking = False  # one was rung and has not looked yet
        # By thread: each writes its own key, one dict write, whole under the GIL: no lock.
        self._running: dict[int, Taken] = {}
        self._threads = [
            threading.Thread(target=self._run_jobs, name=f"pulsarjobs-runner-{i}", daemon=True)
            for i in range(self.concurrency)
        ]

    def start(self) -> None:
        if not self.from_loop:
            self.feed.doorbell = self._ring
        for thread in self._threads:
            thread.start()

    @property
    def busy(self) -> int:
        return len(self._running)

    def hand_over(self, taken: Taken) -> None:
        """A sync job for these threads; callable from the loop."""
        self._handed.append(taken)
        self._wake_one()

    def wake_all(self) -> None:
        self._ring(0)

    async def finish(self, timeout: float) -> int:
        """Wait for the running jobs; after `timeout`, hand back what is still running (a
        thread cannot be stopped: its run goes on, unsettled, until the process ends)."""
        await asyncio.to_thread(join_all, self._threads, timeout)
        if self._running:
            self.pipeline.abandon_late_runs()
        late = list(self._running.values())
        for taken in late + list(self._handed):
            taken.queue.give_back(taken.message)
        self._handed.clear()
        return len(late)

    def _ring(self, arrived: int) -> None:
        if arrived:
            self._wake_one()
        elif self._idle:  # a queue ran dry: every idle runner looks at the lower queues
            with self._bell:
                self._bell.notify_all()

    def _wake_one(self) -> None:
        """Wake one idle runner, unless one is on its way already. A runner that takes a job
        wakes the next while more wait: long jobs spread over every thread, while short ones
        stay with the threads awake — a wake-up costs more than a no-op job."""
        if not self._idle or self._waking:  # counted idle before it looks: no ring is lost
            return
        with self._bell:
            if self._idle and not self._waking:
                self._waking = True
                self._bell.notify()

    def _more_waiting(self) -> bool:
        return bool(self._handed) if self.from_loop else self.feed.has_jobs()

    def _next(self) -> Taken | None:
        if self.from_loop:
            try:
                return self._handed.popleft()
            except IndexError:
                return None
        while (picked := self.feed.pick()) is not None:
            taken = self.pipeline.take_in(*picked)
            if taken is not None:  # None: a second delivery, skipped
                return taken
        return None

    def _run_jobs(self) -> None:
        feed, bell = self.feed, self._bell
        while feed.open:
            taken = self._next()
            if taken is None:
                with bell:
                    self._idle += 1
                    if not self._more_waiting() and feed.open:  # a ring cannot slip by
                        bell.wait(IDLE_WAIT_S)
                        self._waking = False
                    self._idle -= 1
                continue
            if self._more_waiting():
                self._wake_one()
            self._handle(taken)

    def _handle(self, taken: Taken) -> None:
        me = threading.get_ident()
        self._running[me] = taken
        try:
            self.pipeline.carry(taken)
        finally:
            del self._running[me]
            if self.from_loop and self.slots is not None:
                self.slots.give()


def join_all(threads: list[threading.Thread], timeout: float) -> None:
    """Join the threads within `timeout` seconds in all; `math.inf`: however long they take
    (Thread.join takes None for that, and raises OverflowError for inf)."""
    ends = time.monotonic() + timeout
    for thread in threads:
        thread.join(None if math.isinf(timeout) else max(0.0, ends - time.monotonic()))


def make_runners(
    app: AppView, feed: Feed, pipeline: Pipeline, concurrency: int, loop: asyncio.AbstractEventLoop
) -> list[Runners]:
    """The runners an app's jobs need: threads for an all-sync app; else loop runners, with
    runner threads beside them for its sync jobs, `concurrency` counting the jobs of both."""
    kinds = {job.is_async for job in app.jobs.values()}
    any_async, any_sync = True in kinds or not kinds, False in kinds
    parts = (feed, pipeline, concurrency, loop)
    if not any_async:
        return [ThreadRunners(*parts)]
    slots = Slots(concurrency) if any_sync else None
    threads = ThreadRunners(*parts, slots, from_loop=True) if any_sync else None
    loop_runners = LoopRunners(*parts, slots, threads=threads)
    return [loop_runners] + ([threads] if threads else [])
