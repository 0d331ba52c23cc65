"""Runners: take the next job from the feed, run it, settle it with the broker.

An app whose jobs are all `async def` runs them on `concurrency` tasks of the worker's event
loop. An app with any plain `def` job runs `concurrency` runner threads instead: a sync job
then runs on the thread that took it, as a bare receive loop would, with no hand-over to a
pool and back (an async job taken by a runner thread runs on the event loop while its thread
waits). Either way a job is acknowledged only once what replaces it is stored.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any

import pulsar
import structlog

from pulsarjobs.envelope import Envelope
from pulsarjobs.execution import Executor, Outcome
from pulsarjobs.feed import Feed, QueueFeed
from pulsarjobs.schema_registry import WriterSchemas
from pulsarjobs.settle import Delivery, Settler, delivery_of
from pulsarjobs.stats import WorkerStats

log = structlog.get_logger("pulsarjobs.runners")

RUNNER_TURN_S = 0.01  # a loop runner whose jobs never wait yields to the loop this often
IDLE_WAIT_S = 0.5  # an idle runner thread looks again this often, rung or not


class Runners:
    """What both kinds share: the parts a job goes through, and the count of running jobs."""

    def __init__(
        self,
        feed: Feed,
        settler: Settler,
        executor: Executor,
        schemas: WriterSchemas,
        stats: WorkerStats,
        concurrency: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.loop = loop
        self.feed = feed
        self.settler = settler
        self.executor = executor
        self.schemas = schemas
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

    def first_delivery(self, queue: QueueFeed, message: pulsar.Message) -> Delivery | None:
        """The delivery to run; None for a second delivery of a settled message (acked)."""
        delivery = delivery_of(message)
        if not self.settler.seen(delivery):
            return delivery
        self.stats.count_duplicate()
        log.info("second delivery of a settled message skipped", message_id=delivery.message_id)
        queue.consumer.acknowledge(message)
        return None

    def schema_known(self, message: pulsar.Message) -> bool:
        key = WriterSchemas.key(message.topic_name(), message.schema_version())
        return key is None or self.schemas.cached(key)[0]

    def decode(self, delivery: Delivery, message: pulsar.Message) -> Envelope | Outcome:
        """The job, decoded with its writer's schema: looked up (blocking) once per topic and
        version."""
        key = WriterSchemas.key(delivery.topic, message.schema_version())
        schema = None
        if key is not None:
            found, schema = self.schemas.cached(key)
            if not found:
                schema = self.schemas.fetch(key)
        return self.settler.decode(delivery, schema)

    def settled(
        self, queue: QueueFeed, message: pulsar.Message, delivery: Delivery, outcome: Outcome
    ) -> None:
        self.stats.count(outcome.kind)
        self.settler.remember(delivery)
        queue.consumer.acknowledge(message)


class LoopRunners(Runners):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle: deque[asyncio.Future[None]] = deque()  # runners waiting for a job
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """On the loop: start the tasks, and have the feed ring for them."""
        self.feed.doorbell = self._ring
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
            picked = feed.pick()
            if picked is None:
                waiter = loop.create_future()
                self._idle.append(waiter)
                picked = feed.pick()  # a job that came just before we queued up rang nobody
                if picked is None:
                    await waiter
                    turn_ends = loop.time() + RUNNER_TURN_S
                    continue
                self._idle.remove(waiter)
            await self._handle(*picked)
            if loop.time() >= turn_ends:
                await asyncio.sleep(0)  # jobs that never wait would starve heartbeats, signals
                turn_ends = loop.time() + RUNNER_TURN_S

    async def _handle(self, queue: QueueFeed, message: pulsar.Message) -> None:
        self.busy += 1
        try:
            delivery = self.first_delivery(queue, message)
            if delivery is None:
                return
            if self.schema_known(message):
                decoded = self.decode(delivery, message)
            else:
                decoded = await asyncio.to_thread(self.decode, delivery, message)
            outcome = decoded if isinstance(decoded, Outcome) else await self.executor.run(decoded)
            stored = self.settler.store(queue.queue, delivery, outcome)
            if stored is not None:
                await asyncio.wrap_future(stored)
            self.settled(queue, message, delivery, outcome)
        except asyncio.CancelledError:
            queue.give_back(message)  # shutdown ran out of time: hand it back
            raise
        except Exception:
            log.exception("could not settle a job; it will be delivered again", queue=queue.queue)
            queue.give_back(message)
        finally:
            self.busy -= 1


class ThreadRunners(Runners):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bell = threading.Condition()  # rung when jobs arrive or a queue runs dry
        self._lock = threading.Lock()  # guards busy and running
        self._running: dict[int, tuple[QueueFeed, pulsar.Message]] = {}  # by thread
        self._abandoned = False  # past the grace period: late runs are no longer settled
        self._threads = [
            threading.Thread(target=self._run_jobs, name=f"pulsarjobs-runner-{i}", daemon=True)
            for i in range(self.concurrency)
        ]

    def start(self) -> None:
        self.feed.doorbell = self._ring
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
        for queue, message in late:
            queue.give_back(message)
        return len(late)

    def _ring(self, arrived: int) -> None:
        with self._bell:
            if arrived:
                self._bell.notify(arrived)
            else:
                self._bell.notify_all()

    def _run_jobs(self) -> None:
        feed, bell = self.feed, self._bell
        while feed.open:
            picked = feed.pick()
            if picked is None:
                with bell:  # look again under the bell's lock: a ring cannot slip between
                    picked = feed.pick()
                    if picked is None and feed.open:
                        bell.wait(IDLE_WAIT_S)
                if picked is None:
                    continue
            self._handle(*picked)

    def _handle(self, queue: QueueFeed, message: pulsar.Message) -> None:
        me = threading.get_ident()
        with self._lock:
            self.busy += 1
            self._running[me] = (queue, message)
        try:
            delivery = self.first_delivery(queue, message)
            if delivery is None:
                return
            decoded = self.decode(delivery, message)
            if isinstance(decoded, Outcome):
                outcome = decoded
            else:
                outcome = self.executor.run_here(decoded, self.loop)
            stored = self.settler.store(queue.queue, delivery, outcome)
            if stored is not None:
                stored.result()
            if not self._abandoned:
                self.settled(queue, message, delivery, outcome)
        except Exception:
            log.exception("could not settle a job; it will be delivered again", queue=queue.queue)
            queue.give_back(message)
        finally:
            with self._lock:
                self.busy -= 1
                del self._running[me]


def join_all(threads: list[threading.Thread], timeout: float) -> None:
    ends = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, ends - time.monotonic()))
