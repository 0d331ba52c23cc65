"""Runners: take the next job of their lane from the feed, run it, settle it with the broker.

`async def` jobs run on `concurrency` tasks of the worker's event loop; plain `def` jobs on
`concurrency` runner threads, each running a job on the thread that took it, as a bare receive
loop would — no hand-over to a pool and back. A worker starts the runners its app's jobs need
(intake.py files each job in its lane). Either way a job is acknowledged only once what
replaces it is stored.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any

import structlog

from pulsarjobs.execution import Executor, Outcome
from pulsarjobs.feed import LANES, LOOP_LANE, THREAD_LANE, Doorbell, Feed, Lane, QueueFeed, Ready
from pulsarjobs.settle import Settler
from pulsarjobs.stats import WorkerStats

log = structlog.get_logger("pulsarjobs.runners")

RUNNER_TURN_S = 0.01  # a loop runner whose jobs never wait yields to the loop this often
IDLE_WAIT_S = 0.5  # an idle runner thread looks again this often, rung or not


class Slots:
    """At most `limit` jobs at once across the loop's runners and the runner threads, for an
    app with both kinds of job: `--concurrency` counts all of them."""

    def __init__(self, limit: int, doorbells: list[Doorbell]) -> None:
        self._free = limit
        self._lock = threading.Lock()
        self._starved = [False for _ in LANES]  # a runner of the lane waits for a slot
        self._doorbells = doorbells  # the feed's: rung for a lane when a slot frees up

    def take(self, lane: Lane) -> bool:
        with self._lock:
            if self._free:
                self._free -= 1
                return True
            self._starved[lane] = True
            return False

    def give(self) -> None:
        with self._lock:
            self._free += 1
            if True not in self._starved:  # the common case: nobody waits for a slot
                return
            starved = [lane for lane in LANES if self._starved[lane]]
            for lane in starved:
                self._starved[lane] = False
        for lane in starved:  # only a lane that waits for a slot: idle runners stay asleep
            self._doorbells[lane](1)


class Runners:
    """What both kinds share: the parts a job goes through, and the count of running jobs."""

    lane: Lane
    kind: str  # as the worker's first log line says it

    def __init__(
        self,
        feed: Feed,
        settler: Settler,
        executor: Executor,
        stats: WorkerStats,
        concurrency: int,
        loop: asyncio.AbstractEventLoop,
        slots: Slots | None = None,
    ) -> None:
        self.loop = loop
        self.slots = slots
        self.feed = feed
        self.settler = settler
        self.executor = executor
        self.stats = stats
        self.concurrency = concurrency
        self.busy = 0  # jobs running now

    def start(self) -> None:
        """Start taking jobs; the feed rings this kind's doorbell."""
        raise NotImplementedError

    def wake_all(self) -> None:
        """Idle runners look again (and end, once the feed is closed); callable on the loop."""
        raise NotImplementedError

    async def finish(self, timeout: float) -> int:
        """Wait up to `timeout` for the running jobs to settle; hand back the late ones and
        return how many there were."""
        raise NotImplementedError

    def next_job(self) -> tuple[QueueFeed, Ready] | None:
        """The lane's next job, with a slot for it where the runners share slots."""
        if self.slots is None:
            return self.feed.pick(self.lane)
        if not self.slots.take(self.lane):
            return None
        picked = self.feed.pick(self.lane)
        if picked is None:
            self.slots.give()
        return picked

    def done_with_job(self) -> None:
        if self.slots is not None:
            self.slots.give()

    def settled(self, queue: QueueFeed, ready: Ready, outcome: Outcome) -> None:
        self.stats.count(outcome.kind)
        self.settler.remember(ready.delivery)
        queue.consumer.acknowledge(ready.message)


class LoopRunners(Runners):
    lane = LOOP_LANE
    kind = "event loop"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle: deque[asyncio.Future[None]] = deque()  # runners waiting for a job
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """On the loop: start the tasks, and have the feed ring for them."""
        self.feed.doorbells[self.lane] = self._ring
        self._tasks = [self.loop.create_task(self._run_jobs()) for _ in range(self.concurrency)]

    def wake_all(self) -> None:
        """On the loop: idle runners look again (and end, once the feed is closed)."""
        self._wake(0)

    async def finish(self, timeout: float) -> int:
        """Wait for the running jobs; those still running after `timeout` are cancelled and
        handed back. Returns how many were."""
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

    async def _run_jobs(self) -> None:
        """One runner: the next job, by priority, until the feed closes."""
        loop, feed = self.loop, self.feed
        turn_ends = loop.time() + RUNNER_TURN_S
        while feed.open:
            picked = self.next_job()
            if picked is None:
                waiter = loop.create_future()
                self._idle.append(waiter)
                picked = self.next_job()  # one that came before we queued up rang nobody
                if picked is None:
                    await waiter
                    turn_ends = loop.time() + RUNNER_TURN_S
                    continue
                self._idle.remove(waiter)
            await self._handle(*picked)
            self.done_with_job()
            if loop.time() >= turn_ends:
                await asyncio.sleep(0)  # jobs that never wait would starve heartbeats, signals
                turn_ends = loop.time() + RUNNER_TURN_S

    async def _handle(self, queue: QueueFeed, ready: Ready) -> None:
        self.busy += 1
        try:
            job = ready.job
            outcome = job if isinstance(job, Outcome) else await self.executor.run(job)
            stored = self.settler.store(queue.queue, ready.delivery, outcome)
            if stored is not None:
                await asyncio.wrap_future(stored)
            self.settled(queue, ready, outcome)
        except asyncio.CancelledError:
            queue.give_back(ready.message)  # shutdown ran out of time: hand it back
            raise
        except Exception:
            log.exception("could not settle a job; it will be delivered again", queue=queue.queue)
            queue.give_back(ready.message)
        finally:
            self.busy -= 1


class ThreadRunners(Runners):
    lane = THREAD_LANE
    kind = "threads"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bell = threading.Condition()  # rung when jobs arrive or a queue runs dry
        self._idle = 0  # runners waiting for the bell
        self._waking = False  # one was rung and has not looked yet
        self._lock = threading.Lock()  # guards busy and running
        self._running: dict[int, tuple[QueueFeed, Ready]] = {}  # by thread
        self._abandoned = False  # past the grace period: late runs are no longer settled
        self._threads = [
            threading.Thread(target=self._run_jobs, name=f"pulsarjobs-runner-{i}", daemon=True)
            for i in range(self.concurrency)
        ]

    def start(self) -> None:
        self.feed.doorbells[self.lane] = self._ring
        for thread in self._threads:
            thread.start()

    def wake_all(self) -> None:
        self._ring(0)

    async def finish(self, timeout: float) -> int:
        """Wait for the running jobs; after `timeout`, hand back what is still running (a
        thread cannot be stopped: its run goes on, unsettled, until the process ends)."""
        await asyncio.to_thread(join_all, self._threads, timeout)
        with self._lock:
            self._abandoned = True
            late = list(self._running.values())
        for queue, ready in late:
            queue.give_back(ready.message)
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

    def _run_jobs(self) -> None:
        feed, bell, lane = self.feed, self._bell, self.lane
        while feed.open:
            picked = self.next_job()
            if picked is None:
                with bell:
                    self._idle += 1
                    picked = self.next_job()  # under the bell's lock: a ring cannot slip by
                    if picked is None and feed.open:
                        bell.wait(IDLE_WAIT_S)
                        self._waking = False
                    self._idle -= 1
                if picked is None:
                    continue
            if feed.has_jobs(lane):
                self._wake_one()
            self._handle(*picked)
            self.done_with_job()

    def _handle(self, queue: QueueFeed, ready: Ready) -> None:
        me = threading.get_ident()
        with self._lock:
            self.busy += 1
            self._running[me] = (queue, ready)
        try:
            job = ready.job
            outcome = job if isinstance(job, Outcome) else self.executor.run_here(job, self.loop)
            stored = self.settler.store(queue.queue, ready.delivery, outcome)
            if stored is not None:
                stored.result()
            if not self._abandoned:
                self.settled(queue, ready, outcome)
        except Exception:
            log.exception("could not settle a job; it will be delivered again", queue=queue.queue)
            queue.give_back(ready.message)
        finally:
            with self._lock:
                self.busy -= 1
                del self._running[me]


def join_all(threads: list[threading.Thread], timeout: float) -> None:
    ends = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, ends - time.monotonic()))


RUNNERS: dict[Lane, type[Runners]] = {LOOP_LANE: LoopRunners, THREAD_LANE: ThreadRunners}
