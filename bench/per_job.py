"""What the worker's per-job path costs, in process and without a broker: CPU and Python calls.

    python -m bench.per_job [--job noop_async|noop_sync] [--jobs 20000] [--repeat 5] [--top 0]

Builds a worker's parts as `pulsarjobs worker bench.noop_app:app` (or, for `noop_sync`,
`bench.sync_app:app`) builds them, with stand-in consumers and messages, and drives its runners
by hand: for each no-op job, the feed's pick and every stage of the pipeline (pipeline.py: the
duplicate check, writer schema, decode, judging, the run with its hooks, storing, the
acknowledgement and the steps told). No fetch thread, no broker, no other
thread: what is left is the Python work each job costs. Prints the thread CPU time per job (the
least and the median of `--repeat` rounds: CPU time, not wall time, so that other processes on
the machine count less) and the Python calls per job (cProfile, over `--profiled` more jobs; the
same on every run). With `--top N`, the N functions called most per job.

Instructions per job, which do not depend on the machine's load: two runs under callgrind that
differ only in `--jobs`, e.g. `PYTHONHASHSEED=0 valgrind --tool=callgrind python -m
bench.per_job --repeat 1 --profiled 0 --jobs 1000` and the same with 3000: (the second's total
minus the first's) / 2000.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import statistics
import time
from collections.abc import Callable
from typing import Any

import _pulsar
import pulsar

from pulsarjobs.loading import load_app
from pulsarjobs.logs import configure_logging
from pulsarjobs.wire.envelope import SCHEMA_JSON, Envelope, encode, new_id
from pulsarjobs.worker._queue_feed import Receiver
from pulsarjobs.worker._runners import LoopRunners, ThreadRunners
from pulsarjobs.worker.feed import Feed
from pulsarjobs.worker.worker import Worker, _WorkerSession

QUEUE = "per_job"
SCHEMA_VERSION = (0).to_bytes(8, "big")  # as a producer with a registered schema stamps it


class Message:
    """A received job as the runners see one (the accessors a pulsar.Message has)."""

    __slots__ = ("_data", "_id", "_topic")

    def __init__(self, topic: str, data: bytes, message_id: _pulsar.MessageId) -> None:
        self._topic, self._data, self._id = topic, data, message_id

    def topic_name(self) -> str:
        return self._topic

    def schema_version(self) -> bytes:
        return SCHEMA_VERSION

    def message_id(self) -> _pulsar.MessageId:
        return self._id

    def data(self) -> bytes:
        return self._data


class Consumer:
    """A consumer stand-in: acknowledges into the void, never delivers by itself."""

    def receive(self, timeout_millis: int | None = None) -> pulsar.Message:
        raise pulsar.Timeout()

    def batch_receive(self) -> list[pulsar.Message]:
        return []

    def negative_acknowledge(self, message: pulsar.Message) -> None: ...
    def acknowledge(self, message: pulsar.Message) -> None: ...
    def close(self) -> None: ...


def build(job: str) -> tuple[Callable[[list[Any]], None], Callable[[int], list[Any]]]:
    """(drain the given messages through the runners, make `n` messages)."""
    app = load_app("bench.noop_app:app" if job == "noop_async" else "bench.sync_app:app", None)
    worker = Worker(app, queues=QUEUE, concurrency=32, prefetch=1000)
    topic = worker.topics[QUEUE].jobs
    loop = asyncio.new_event_loop()
    running = _WorkerSession(loop, asyncio.Event())
    consumers: dict[str, Receiver] = {QUEUE: Consumer(), f"{QUEUE}-ordered": Consumer()}
    worker._build(running, consumers)
    gc.collect()  # as Worker._start does once the worker is built
    gc.freeze()
    feed: Feed | None = running.feed
    assert feed is not None
    feed.open = True  # as Feed.start leaves it, without its fetch threads
    runners = running.runners[0]
    runners.pipeline.schemas.known[(topic, 0)] = SCHEMA_JSON  # looked up once in a worker
    ready = feed.queues[0]._ready
    numbers = iter(range(1, 1 << 62))
    # One payload for all (made once: its encoding is no part of the worker's path); each
    # message has an id of its own, as the worker skips a message it settled before: the
    # client's own type, so that what the worker makes of it is counted (making one costs the
    # harness 5,200 instructions, counted too; a text id cost 1,300).
    data = encode(Envelope(id=new_id(), type=job, queue=QUEUE, args=(7,)))

    def messages(count: int) -> list[Any]:
        return [Message(topic, data, _pulsar.MessageId(-1, next(numbers), 0, -1))
                for _ in range(count)]  # fmt: skip

    async def drain_on_loop(batch: list[Any]) -> None:
        assert isinstance(runners, LoopRunners)
        task = asyncio.current_task()
        for message in batch:
            ready.append(message)
            picked = runners._next()
            assert picked is not None
            await runners._handle(*picked, task)

    def drain(batch: list[Any]) -> None:
        if isinstance(runners, LoopRunners):
            loop.run_until_complete(drain_on_loop(batch))
            return
        assert isinstance(runners, ThreadRunners)
        for message in batch:
            ready.append(message)
            taken = runners._next()
            assert taken is not None
            runners._handle(taken)

    return drain, messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--job", default="noop_async", choices=("noop_async", "noop_sync"))
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per timed round")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds")
    parser.add_argument("--profiled", type=int, default=10_000, help="jobs counted (0: none)")
    parser.add_argument("--top", type=int, default=0, help="functions called most, per job")
    options = parser.parse_args()
    configure_logging("console", "warning")  # as the benchmark's workers run
    drain, messages = build(options.job)
    drain(messages(2_000))  # caches filled, code paths warm
    rounds = []
    for _ in range(options.repeat):
        batch = messages(options.jobs)
        started = time.thread_time()
        drain(batch)
        rounds.append((time.thread_time() - started) / options.jobs * 1e6)
    print(f"{options.job}: CPU us per job: least {min(rounds):.2f}, median "
          f"{statistics.median(rounds):.2f}")  # fmt: skip
    profiled = options.profiled
    if not profiled:
        return
    batch = messages(profiled)
    profile = cProfile.Profile()
    profile.enable()
    drain(batch)
    profile.disable()
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    calls = sum(row[1] for row in stats.values()) / profiled
    print(f"{options.job}: Python calls per job: {calls:.1f}")
    for (path, line, name), row in sorted(stats.items(), key=lambda item: -item[1][1])[
        : options.top
    ]:
        print(f"  {row[1] / profiled:6.2f}  {path.rsplit('/', 1)[-1]}:{line}({name})")


if __name__ == "__main__":
    main()
