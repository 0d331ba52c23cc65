"""A producer waiting on many job results at once: its memory, and how soon each result comes.

    python -m bench.results [--jobs 10000] [--concurrency 20] [--out FILE.json]

On the broker named by PULSARJOBS_SERVICE_URL / PULSARJOBS_ADMIN_URL (a namespace of its own):
this process enqueues `--jobs` jobs that keep their result, waits for all of them at once
(`asyncio.gather` of `app.result_async`), and only then starts a worker process
(`pulsarjobs worker bench.results:app`), which runs them. For each result, the delay is the time
it reached its waiter minus its `settled_at` (the worker's clock when it settled the job, on
the same machine). Memory is this process's peak RSS (`ru_maxrss`), before and after waiting.
Last, a fresh App in this process asks for the first job's result: it reads the results topic
to its end first (what a producer started after the results were stored pays once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pulsar

from pulsarjobs.app import App
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topics import results_topic
from pulsarjobs.workflows.results import JobResult

app = App(Settings.from_env())


@app.job(keep_result=timedelta(minutes=30))
def echo(n: int) -> int:
    return n


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def wait_for_all(bench_app: App, ids: list[str], timeout: float) -> dict[str, float]:
    """Each job's result, awaited at once; when each arrived (epoch seconds)."""
    arrived: dict[str, float] = {}

    async def one(job_id: str) -> None:
        await bench_app.result_async(job_id, timeout=timeout)
        arrived[job_id] = time.time()

    await asyncio.gather(*(one(job_id) for job_id in ids))
    return arrived


def run(jobs: int, concurrency: int) -> dict[str, float]:
    base = Settings.from_env()
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    with Admin(base.admin_url, token=base.token) as admin:
        admin.ensure_namespace(f"{base.tenant}/{namespace}")
    settings = base.with_changes(namespace=namespace)
    bench_app = App(settings)
    bench_app.job(name="echo", keep_result=timedelta(minutes=30))(echo.func)
    env = {**os.environ, "PULSARJOBS_NAMESPACE": namespace}
    log = Path(tempfile.gettempdir()) / f"bench-results-{namespace}.log"
    try:
        ids = bench_app.enqueue_many([bench_app.jobs["echo"].call(n) for n in range(jobs)])
        rss_before = peak_rss_mb()
        waiting = asyncio.run(wait_and_start(bench_app, ids, env, log, concurrency))
        elapsed, arrived, worker = waiting
        peak_rss = peak_rss_mb()
        settled = settled_at(bench_app)
        delays_ms = sorted((arrived[i] - settled[i]) * 1000 for i in ids)
        fresh = App(settings)
        started = time.perf_counter()
        assert fresh.result(ids[0], timeout=60) == 0
        first_lookup_s = time.perf_counter() - started
        fresh.close()
        return {
            "jobs": jobs,
            "drain_s": elapsed,
            "delay_ms_p50": statistics.median(delays_ms),
            "delay_ms_p90": delays_ms[int(len(delays_ms) * 0.9)],
            "delay_ms_p99": delays_ms[int(len(delays_ms) * 0.99)],
            "delay_ms_max": delays_ms[-1],
            "rss_mb_before_waiting": rss_before,
            "peak_rss_mb": peak_rss,
            "fresh_process_first_result_s": first_lookup_s,
            "worker_exit": worker,
        }
    finally:
        bench_app.close()


def settled_at(bench_app: App) -> dict[str, float]:
    """When the worker settled each job, as its result says (epoch seconds)."""
    reader = bench_app.connection.client.create_reader(
        results_topic(bench_app.settings), pulsar.MessageId.earliest
    )
    found = {}
    try:
        while reader.has_message_available():
            result = JobResult.decode(reader.read_next(timeout_millis=10_000).data())
            found[result.job_id] = result.settled_at.timestamp()
    finally:
        reader.close()
    return found


async def wait_and_start(
    bench_app: App, ids: list[str], env: dict[str, str], log: Path, concurrency: int
) -> tuple[float, dict[str, float], int]:
    waiting = asyncio.ensure_future(wait_for_all(bench_app, ids, timeout=600))
    await asyncio.sleep(1.0)  # every waiter registered before the first job runs
    with log.open("ab") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "pulsarjobs", "worker", "bench.results:app",
             "--concurrency", str(concurrency)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    started = time.perf_counter()
    try:
        arrived = await waiting
        elapsed = time.perf_counter() - started
    finally:
        worker.terminate()
        code = worker.wait(60)
    return elapsed, arrived, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    figures = run(args.jobs, args.concurrency)
    text = json.dumps({k: round(v, 3) for k, v in figures.items()}, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
