"""The event loop's runners: jobs that wait on I/O each get a runner of their own."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from pulsarjobs.worker._runners import LoopRunners

CONCURRENCY = 8


class StandInFeed:
    """The feed's side the runners use: jobs arrive in batches and ring the doorbell, as the
    fetch thread does."""

    def __init__(self) -> None:
        self.open = True
        self.doorbell: Any = lambda _arrived: None
        self.jobs: deque[str] = deque()

    def arrive(self, jobs: list[str]) -> None:
        self.jobs.extend(jobs)
        self.doorbell(len(jobs))

    def pick(self) -> tuple[Any, str] | None:
        return (None, self.jobs.popleft()) if self.open and self.jobs else None

    def has_jobs(self) -> bool:
        return bool(self.jobs)


class StandInPipeline:
    """Runs each job until `release`, as a job waiting on I/O would."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0
        self.most_at_once = 0
        self.done: list[str] = []

    def take_in(self, queue: Any, message: str, may_block: bool = True) -> str:
        return message

    def runs_on_threads(self, taken: str) -> bool:
        return False

    async def carry_async(self, taken: str, task: Any) -> None:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await self.release.wait()
        self.running -= 1
        self.done.append(taken)


async def start() -> tuple[StandInFeed, StandInPipeline, LoopRunners]:
    feed, pipeline = StandInFeed(), StandInPipeline()
    runners = LoopRunners(feed, pipeline, CONCURRENCY, asyncio.get_running_loop())  # type: ignore[arg-type]
    runners.start()
    await asyncio.sleep(0.01)  # every runner finds no job and waits
    assert len(runners._idle) == CONCURRENCY
    return feed, pipeline, runners


async def stop(feed: StandInFeed, runners: LoopRunners) -> None:
    feed.open = False
    runners.wake_all()
    assert await runners.finish(5.0) == 0


async def until(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("not in time")


def test_jobs_that_wait_on_io_each_get_a_runner() -> None:
    async def scenario() -> None:
        feed, pipeline, runners = await start()
        feed.arrive([f"job{n}" for n in range(CONCURRENCY + 2)])
        await until(lambda: pipeline.running == CONCURRENCY)
        assert len(feed.jobs) == 2  # the rest wait for a runner to be free
        pipeline.release.set()
        await until(lambda: len(pipeline.done) == CONCURRENCY + 2)
        assert pipeline.most_at_once == CONCURRENCY
        await stop(feed, runners)

    asyncio.run(scenario())
