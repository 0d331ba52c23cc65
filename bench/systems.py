"""The systems under test: how each enqueues, how its workers start, how long its queue is.

Pulsar systems read a fresh queue per run and count what is left by the subscription's
backlog; the peers share one Redis, emptied after each run, and count the length of their list.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pulsarjobs.app import App, JobCall
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topics import topics_for

CHUNK = 5_000  # jobs per bulk enqueue call
PYTHON = sys.executable
_queue_numbers = itertools.count(1)


def rate(count: int, started: float) -> float:
    return count / max(time.perf_counter() - started, 1e-9)


class PulsarjobsClient:
    """Enqueues with pulsarjobs' public API; each run gets a queue of its own."""

    library = "pulsarjobs"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = App(settings)
        self.admin = Admin(settings.admin_url, token=settings.token)
        self.queue = ""
        self._unindexed: PulsarjobsClient | None = None

    def unindexed(self) -> PulsarjobsClient:
        """A client of the same broker that leaves its jobs out of the job index: the bare
        loop's. No pulsarjobs worker settles them, so their entries would stay live for good
        and grow the broker's heap at each compaction of the index (docs/dashboard.md, "What
        the broker pays"), under the runs that come after."""
        if self._unindexed is None:
            self._unindexed = PulsarjobsClient(dataclasses.replace(self.settings, job_index=False))
        return self._unindexed

    def fresh_queue(self, prefix: str, partitions: int = 0) -> str:
        """A new queue, on a topic of `partitions` partitions (0: not partitioned)."""
        self.queue = f"{prefix}_{next(_queue_numbers)}"
        topic = topics_for(self.settings, self.queue).jobs
        if partitions:
            self.admin.create_topic(topic, partitions)
        # Subscription and producer first, so that their one-off set-up is not timed.
        self.app.connection.prepare_queue(topic, self.settings.subscription)
        self.app.connection.producer(topic)
        return self.queue

    def call(self, job: str, argument: int) -> JobCall:
        return JobCall(job, args=(argument,), queue=self.queue)

    def bulk(self, job: str, count: int) -> float:
        started = time.perf_counter()
        for first in range(0, count, CHUNK):
            last = min(count, first + CHUNK)
            self.app.enqueue_many([self.call(job, n) for n in range(first, last)])
        return rate(count, started)

    def single(self, job: str, count: int) -> float:
        started = time.perf_counter()
        for n in range(count):
            self.app.enqueue(self.call(job, n))
        return rate(count, started)

    async def send_stamped(self, job: str, count: int) -> None:
        """`count` jobs carrying their send time, in one enqueue call (cheapest for a producer
        that has several due at once)."""
        await self.app.enqueue_many_async([self.call(job, time.time_ns()) for _ in range(count)])

    def pending(self) -> int:
        stats = self.admin.summed_stats(topics_for(self.settings, self.queue).jobs)
        return int(stats["subscriptions"][self.settings.subscription]["msgBacklog"])

    def reset(self) -> None:
        """Nothing to do: the next run reads another queue."""

    def close(self) -> None:
        self.app.close()
        self.admin.close()
        if self._unindexed is not None:
            self._unindexed.close()


class CeleryClient:
    library = "celery"
    queue_key = "celery"

    def __init__(self, redis_url: str) -> None:
        import redis

        os.environ["BENCH_REDIS_URL"] = redis_url  # read when the app module is imported
        from bench import celery_app

        self.tasks = celery_app
        self.redis = redis.Redis.from_url(redis_url)

    def fresh_queue(self, prefix: str) -> str:
        return self.queue_key

    def bulk(self, job: str, count: int) -> float:
        from celery import group

        task = getattr(self.tasks, job)
        started = time.perf_counter()
        for first in range(0, count, CHUNK):
            group(task.s(n) for n in range(first, min(count, first + CHUNK))).apply_async()
        return rate(count, started)

    def single(self, job: str, count: int) -> float:
        task = getattr(self.tasks, job)
        started = time.perf_counter()
        for n in range(count):
            task.apply_async((n,))
        return rate(count, started)

    async def send_stamped(self, job: str, count: int) -> None:
        task = getattr(self.tasks, job)
        for _ in range(count):
            task.apply_async((time.time_ns(),))

    def pending(self) -> int:
        return int(self.redis.llen(self.queue_key))

    def reset(self) -> None:
        # Kombu's bindings stay: the producer here declared them once and will not again.
        self.redis.delete(self.queue_key, "unacked", "unacked_index", "unacked_mutex")

    def close(self) -> None:
        self.redis.close()


class DramatiqClient:
    library = "dramatiq"
    queue_key = "dramatiq:default"

    def __init__(self, redis_url: str) -> None:
        import redis

        os.environ["BENCH_REDIS_URL"] = redis_url  # read when the app module is imported
        from bench import dramatiq_app

        self.actors = dramatiq_app
        self.redis = redis.Redis.from_url(redis_url)

    def fresh_queue(self, prefix: str) -> str:
        return self.queue_key

    def bulk(self, job: str, count: int) -> float:
        from dramatiq import group

        actor = getattr(self.actors, job)
        started = time.perf_counter()
        for first in range(0, count, CHUNK):
            group(actor.message(n) for n in range(first, min(count, first + CHUNK))).run()
        return rate(count, started)

    def single(self, job: str, count: int) -> float:
        actor = getattr(self.actors, job)
        started = time.perf_counter()
        for n in range(count):
            actor.send(n)
        return rate(count, started)

    async def send_stamped(self, job: str, count: int) -> None:
        actor = getattr(self.actors, job)
        for _ in range(count):
            actor.send(time.time_ns())

    def pending(self) -> int:
        return int(self.redis.llen(self.queue_key))

    def reset(self) -> None:
        keys = list(self.redis.scan_iter("dramatiq:*"))
        if keys:
            self.redis.delete(*keys)

    def close(self) -> None:
        self.redis.close()


Client = PulsarjobsClient | CeleryClient | DramatiqClient
# (system, processes, latency run?, pulsarjobs' log level) -> the worker command lines
Commands = Callable[[Any, int, bool, str], list[list[str]]]


@dataclass
class System:
    """One way to run the no-op job: which client enqueues it, which workers run it."""

    name: str
    label: str
    client: Client
    noop_job: str  # the job drained
    latency_job: str  # the job that stamps its send time
    commands: Commands
    server_pid: int | None = None  # the broker's or Redis' process, when this run started it

    def worker_commands(
        self, processes: int, latency: bool = False, log_level: str = "warning"
    ) -> list[list[str]]:
        """`latency`: handlers stamp their start; `log_level` is the pulsarjobs worker's."""
        return self.commands(self, processes, latency, log_level)


@dataclass
class Tuning:
    concurrency: int  # pulsarjobs: jobs at once per process
    dramatiq_threads: int
    prefetch: int | None = None  # pulsarjobs: jobs the client holds per queue (None: default)


def pulsar_systems(client: PulsarjobsClient, tuning: Tuning) -> list[System]:
    bare_client = client.unindexed()

    def bare(system: System, processes: int, latency: bool, log_level: str) -> list[list[str]]:
        topic = topics_for(bare_client.settings, bare_client.queue).jobs
        command = [PYTHON, "-m", "bench.bare_consumer", topic, bare_client.settings.subscription]
        return [command + (["--record"] if latency else [])] * processes

    def worker_of(app: str) -> Commands:
        def worker(
            system: System, processes: int, latency: bool, log_level: str
        ) -> list[list[str]]:
            return worker_command(app, processes, log_level)

        return worker

    def worker_command(app: str, processes: int, log_level: str) -> list[list[str]]:
        return [
            [
                PYTHON,
                "-m",
                "pulsarjobs",
                "worker",
                app,
                "--queues",
                client.queue,
                "--processes",
                str(processes),
                "--concurrency",
                str(tuning.concurrency),
                *(["--prefetch", str(tuning.prefetch)] if tuning.prefetch else []),
                "--log-level",
                log_level,
            ]
        ]

    mixed, sync_only = worker_of("bench.noop_app:app"), worker_of("bench.sync_app:app")
    return [
        System("bare", "bare pulsar-client", bare_client, "noop_async", "latency_async", bare),
        System("pj_async", "pulsarjobs async", client, "noop_async", "latency_async", mixed),
        # An app of plain def jobs: runner threads take the jobs in themselves.
        System("pj_sync", "pulsarjobs sync", client, "noop_sync", "latency_async", sync_only),
        # Sync jobs of an app that has async ones too: they come through the event loop.
        System(
            "pj_sync_mixed",
            "pulsarjobs sync (mixed app)",
            client,
            "noop_sync",
            "latency_async",
            mixed,
        ),
    ]


def peer_systems(redis_url: str, tuning: Tuning) -> list[System]:
    def celery(system: System, processes: int, latency: bool, log_level: str) -> list[list[str]]:
        return [
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "bench.celery_app",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(processes),
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        ]

    def dramatiq(system: System, processes: int, latency: bool, log_level: str) -> list[list[str]]:
        return [
            [
                PYTHON,
                "-m",
                "dramatiq",
                "bench.dramatiq_app",
                "--processes",
                str(processes),
                "--threads",
                str(tuning.dramatiq_threads),
            ]
        ]

    return [
        System("celery", "Celery (Redis)", CeleryClient(redis_url), "noop", "latency", celery),
        System(
            "dramatiq", "Dramatiq (Redis)", DramatiqClient(redis_url), "noop", "latency", dramatiq
        ),
    ]


def worker_env(settings: Settings, redis_url: str | None, record_dir: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PULSARJOBS_SERVICE_URL": settings.service_url,
        "PULSARJOBS_ADMIN_URL": settings.admin_url,
        "PULSARJOBS_NAMESPACE": settings.namespace,
        "BENCH_RECORD_DIR": record_dir,
    }
    if redis_url:
        env["BENCH_REDIS_URL"] = redis_url
    return env
