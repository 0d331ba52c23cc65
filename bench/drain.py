"""Drain throughput: N no-op jobs preloaded, then drained by one worker process.

    python -m bench.drain --jobs 20000 --runs 3

Compares, in one run on one broker: a bare pulsar-client loop (receive + decode the envelope +
acknowledge) and `pulsarjobs worker` with an async and a sync no-op job. The rate is taken
between 10% and 90% drained (no start-up), from the subscription's backlog.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.broker import benchmark_settings
from pulsarjobs.admin import Admin
from pulsarjobs.app import App, JobCall
from pulsarjobs.settings import Settings
from pulsarjobs.topics import topics_for

ROOT = Path(__file__).resolve().parents[1]


def enqueue(settings: Settings, job: str, queue: str, count: int) -> float:
    """Bulk-enqueue `count` jobs; returns jobs/s."""
    app = App(settings)
    started = time.perf_counter()
    for first in range(0, count, 5_000):
        calls = [
            JobCall(job, args=(n,), queue=queue) for n in range(first, min(count, first + 5_000))
        ]
        app.enqueue_many(calls)
    rate = count / (time.perf_counter() - started)
    app.close()
    return rate


def backlog(admin: Admin, settings: Settings, queue: str) -> int:
    topic = topics_for(settings, queue).jobs.removeprefix("persistent://")
    stats = admin._call("GET", f"/admin/v2/persistent/{topic}/stats")
    return int(stats["subscriptions"][settings.subscription]["msgBacklog"])


def watch_drain(
    settings: Settings, queue: str, count: int, process: subprocess.Popen[bytes]
) -> float:
    """jobs/s between 10% and 90% drained."""
    marks: dict[float, float] = {}
    with Admin(settings.admin_url) as admin:
        while True:
            left = backlog(admin, settings, queue)
            done = 1 - left / count
            now = time.perf_counter()
            for mark in (0.1, 0.9):
                if done >= mark and mark not in marks:
                    marks[mark] = now
            if done >= 0.9 or process.poll() is not None:
                break
            time.sleep(0.05)
    process.terminate()
    process.wait(60)
    if len(marks) < 2:
        raise RuntimeError("the drain did not finish")
    return 0.8 * count / (marks[0.9] - marks[0.1])


def env_for(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "PULSARJOBS_SERVICE_URL": settings.service_url,
        "PULSARJOBS_ADMIN_URL": settings.admin_url,
        "PULSARJOBS_NAMESPACE": settings.namespace,
    }


def drain_with_worker(settings: Settings, job: str, count: int, concurrency: int) -> float:
    queue = f"{job}_{time.monotonic_ns()}"
    enqueue(settings, job, queue, count)
    process = subprocess.Popen(
        [sys.executable, "-m", "pulsarjobs", "worker", "bench.noop_app:app", "--queues", queue,
         "--concurrency", str(concurrency), "--log-level", "warning"],
        env=env_for(settings), cwd=ROOT,
    )  # fmt: skip
    return watch_drain(settings, queue, count, process)


def drain_with_bare_client(settings: Settings, count: int) -> float:
    queue = f"bare_{time.monotonic_ns()}"
    enqueue(settings, "noop_async", queue, count)
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.bare_consumer", topics_for(settings, queue).jobs,
         settings.subscription],
        env=env_for(settings), cwd=ROOT,
    )  # fmt: skip
    return watch_drain(settings, queue, count, process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    options = parser.parse_args()
    figures: dict[str, list[float]] = {"bare_client": [], "async_noop": [], "sync_noop": []}
    with benchmark_settings() as settings:
        figures["enqueue_bulk"] = [enqueue(settings, "noop_async", "warmup", options.jobs)]
        for _ in range(options.runs):  # interleaved, so that noise hits every system alike
            figures["bare_client"].append(drain_with_bare_client(settings, options.jobs))
            figures["async_noop"].append(
                drain_with_worker(settings, "noop_async", options.jobs, options.concurrency)
            )
            figures["sync_noop"].append(
                drain_with_worker(settings, "noop_sync", options.jobs, options.concurrency)
            )
    medians = {name: statistics.median(values) for name, values in figures.items()}
    medians["drain_vs_raw_async"] = medians["async_noop"] / medians["bare_client"]
    medians["drain_vs_raw_sync"] = medians["sync_noop"] / medians["bare_client"]
    for name, value in medians.items():
        print(f"{name:20} {value:10.2f}")
    if options.out:
        options.out.write_text(json.dumps({"runs": figures, "median": medians}, indent=2))


if __name__ == "__main__":
    main()
