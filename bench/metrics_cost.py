"""What worker metrics add to each job: the exact calls a worker makes per job, timed.

    python -m bench.metrics_cost [--number 200000]

Per job, a worker with metrics calls `WorkerMetrics.started` as the job starts and
`WorkerMetrics.settled` once it is settled; without metrics, it checks `metrics is not None`
twice. Both are timed here, with one process's metrics (a lock per update) and a group's
(prometheus-client's multiprocess mode: a lock and a write to a memory-mapped file per update),
the latter in a child process, as the mode is chosen by the environment at import.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import timeit
from typing import Any


def per_job_us(number: int) -> dict[str, float]:
    from pulsarjobs import App, Envelope, Outcome, Verdict, Worker, WorkerMetrics
    from pulsarjobs.worker.metrics import MULTIPROCESS_DIR

    app = App()

    @app.job
    def noop() -> None: ...

    in_group = MULTIPROCESS_DIR in os.environ
    metrics = WorkerMetrics(port=None if in_group else free_port())
    metrics.start(Worker(app, metrics=metrics))  # serves, or copies gauges; never subscribes
    envelope = Envelope(id="j", type="noop", queue="default")
    outcome = Outcome(Verdict.DONE, envelope, duration=0.0004)
    off: Any = None

    def with_metrics() -> None:
        metrics.started(envelope)
        metrics.settled("default", outcome)

    def without_metrics() -> None:
        if off is not None:
            off.started(envelope)
        if off is not None:
            off.settled("default", outcome)

    def best(call: Any) -> float:
        return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6

    try:
        return {
            "started": best(lambda: metrics.started(envelope)),
            "settled": best(lambda: metrics.settled("default", outcome)),
            "per job, on": best(with_metrics),
            "per job, off": best(without_metrics),
        }
    finally:
        metrics.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(per_job_us(args.number)))
        return
    print("one process:", format_us(per_job_us(args.number)))
    with tempfile.TemporaryDirectory() as directory:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}
        command = [sys.executable, "-m", "bench.metrics_cost", "--child", f"--number={args.number}"]
        out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    print("a group's process:", format_us(json.loads(out)))


def format_us(timings: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f} µs" for name, value in timings.items())


if __name__ == "__main__":
    main()
