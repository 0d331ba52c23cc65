"""What fair queueing costs a drain: no-op jobs spread over keys of a fair queue against the same
jobs on a plain queue, in one run on one broker.

    python -m bench.fair_cost [--jobs 20000] [--keys 100] [--repeat 3] [--out FILE.json]

It starts a local Pulsar (unless PULSARJOBS_SERVICE_URL names one). Every round drains, in a
namespace of its own each, `--jobs` preloaded no-op jobs with one worker process (`pulsarjobs
worker bench.fair_app:app --concurrency 32 --prefetch 1000`): once on the plain queue, once on
the fair queue with its jobs' keys spread over `--keys` keys (on the 16 lanes), their order
rotated round by round. jobs/s from 10% to 90% drained and the worker's CPU per 1,000 jobs
(bench/workers.py); medians, and fair / plain, go to `--out` (bench/results/fair.json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.broker import BenchBroker, benchmark_broker, fresh_namespace
from bench.environment import environment
from bench.fair_app import FAIR, PLAIN, make_app
from bench.report import save, say
from bench.systems import PYTHON, worker_env
from bench.workers import ROOT, WorkerFailed, Workers, watch_drain
from pulsarjobs.logs import configure_logging
from pulsarjobs.operations.fair_keys import lane_topics
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topics import topics_for

CHUNK = 1_000  # jobs per enqueue_many
KINDS = {"plain": (PLAIN, "plain_noop"), "fair": (FAIR, "fair_noop")}  # queue, job


def parse_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--jobs", type=int, default=20_000, help="jobs per drain, plain and fair alike")
    add("--keys", type=int, default=100, help="keys the fair jobs are spread over")
    add("--repeat", type=int, default=3, help="rounds; medians are reported")
    add("--concurrency", type=int, default=32, help="the worker's jobs at once")
    add("--prefetch", type=int, default=1000, help="jobs the worker's client holds")
    add("--out", type=Path, default=ROOT / "bench" / "results" / "fair.json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_options(argv)
    configure_logging("console", "warning")
    with benchmark_broker() as broker, tempfile.TemporaryDirectory(prefix="fair-") as work:
        results = run(broker, Path(work), options)
    print(json.dumps({k: results[k] for k in ("ratio", "errors")}, indent=2))
    print(f"figures: {options.out}", file=sys.stderr)


def run(broker: BenchBroker, work: Path, options: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {
        "environment": environment(broker.settings, None),
        "options": {k: v for k, v in vars(options).items() if k != "out"},
        "errors": [],
    }
    drains: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    for round_ in range(options.repeat):
        kinds = list(KINDS)
        for kind in kinds[round_ % 2 :] + kinds[: round_ % 2]:
            try:
                drains[kind].append(drain(broker, work, options, kind))
            except WorkerFailed as error:
                say(f"FAILED drain {kind}: {error}")
                results["errors"].append(f"drain {kind}: {str(error)[:2000]}")
        results["drain"] = {kind: with_median(runs) for kind, runs in drains.items()}
        results["ratio"] = ratio(drains)
        save(results, options.out)
    results["environment"]["load_average_end"] = list(os.getloadavg())
    save(results, options.out)
    return results


def drain(
    broker: BenchBroker, work: Path, options: argparse.Namespace, kind: str
) -> dict[str, float]:
    settings = fresh_namespace(broker.settings)
    queue, job = KINDS[kind]
    app, admin = make_app(settings), Admin(settings.admin_url, token=settings.token)
    env = {**worker_env(settings, None, str(work)), "BENCH_FAIR_KEYS": str(options.keys)}
    os.environ["BENCH_FAIR_KEYS"] = str(options.keys)  # this process's keys: the same
    try:
        declared = app.jobs[job]
        for first in range(0, options.jobs, CHUNK):
            last = min(options.jobs, first + CHUNK)
            app.enqueue_many([declared.call(n) for n in range(first, last)])
        topics = lane_topics(admin, settings, queue) or [topics_for(settings, queue).jobs]

        def pending() -> int:
            stats = [admin.summed_stats(topic) for topic in topics]
            return sum(int(s["subscriptions"][settings.subscription]["msgBacklog"]) for s in stats)

        command = [PYTHON, "-m", "pulsarjobs", "worker", "bench.fair_app:app", "--queues", queue,
                   "--concurrency", str(options.concurrency), "--prefetch",
                   str(options.prefetch), "--log-level", "warning"]  # fmt: skip
        workers = Workers.start([command], env, work / f"{kind}.log")
        try:
            figures = watch_drain(workers, pending, options.jobs, broker.pid)
        finally:
            workers.stop()
    finally:
        app.close()
        admin.close()
    say(f"drain {kind:5} {options.jobs:7,} jobs {figures['jobs_per_s']:9,.0f} jobs/s  "
        f"worker {figures['cpu_s_per_1000']:.3f} CPU s/1000")  # fmt: skip
    return figures


def with_median(runs: list[dict[str, float]]) -> dict[str, Any]:
    if not runs:
        return {"runs": [], "median": {}}
    return {"runs": runs, "median": {k: statistics.median(r[k] for r in runs) for k in runs[0]}}


def ratio(drains: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    """Fair over plain, of the medians: jobs/s and worker CPU per job."""
    figures: dict[str, float] = {}
    for key in ("jobs_per_s", "cpu_s_per_1000"):
        plain = [run[key] for run in drains["plain"]]
        fair = [run[key] for run in drains["fair"]]
        if plain and fair and (base := statistics.median(plain)):
            figures[key] = statistics.median(fair) / base
    return figures


if __name__ == "__main__":
    main()
