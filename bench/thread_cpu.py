"""Where a worker's CPU per job goes, thread by thread: the bare loop and a pulsarjobs worker
draining no-op jobs in turns, on one broker.

    python -m bench.thread_cpu [--jobs 50000] [--repeat 3] [--job noop_async|noop_sync]

Each system drains `--jobs` preloaded jobs in one process; between 10% and 90% drained, each
thread's CPU time is read from /proc. Prints, per run, the CPU µs per job of the main thread
(a pulsarjobs worker's event loop, the bare loop's receive loop) and of the process's other
threads (the client's, and a worker's fetch and runner threads), the busiest first. The client's
threads and Python's carry no names the kernel can show, so they are listed by their CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.broker import benchmark_broker
from bench.systems import PulsarjobsClient, System, Tuning, pulsar_systems, worker_env
from bench.workers import TICKS, Workers
from pulsarjobs.logs import configure_logging


def thread_cpu(pid: int) -> dict[int, tuple[float, float]]:
    """CPU seconds (in all, in the kernel) by thread id, of each thread of `pid` alive now."""
    seconds = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            # The task's own stat: /proc/TID/stat (workers.stat_fields) gives the process's.
            text = (task / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        fields = text[text.rindex(")") + 2 :].split()
        user, kernel = int(fields[11]) / TICKS, int(fields[12]) / TICKS
        seconds[int(task.name)] = (user + kernel, kernel)
    return seconds


def measure(system: System, jobs: int, work: Path) -> str:
    client = system.client
    assert isinstance(client, PulsarjobsClient)
    client.fresh_queue(f"threads_{system.name}")
    client.bulk(system.noop_job, jobs)
    workers = Workers.start(
        system.worker_commands(1), worker_env(client.settings, None, str(work)), work / "log"
    )
    try:
        while client.pending() > 0.9 * jobs:
            workers.check_alive()
            time.sleep(0.02)
        pid = workers.processes[0].pid
        before, started, pending = thread_cpu(pid), time.perf_counter(), client.pending()
        while client.pending() > 0.1 * jobs:
            workers.check_alive()
            time.sleep(0.05)
        after, ended, done = thread_cpu(pid), time.perf_counter(), pending - client.pending()
    finally:
        workers.stop()
    if done <= 0:
        raise SystemExit(f"{system.name} drained {jobs} jobs too fast to measure: give more --jobs")

    def per_job(tid: int, kind: int) -> float:
        return (after[tid][kind] - before.get(tid, (0.0, 0.0))[kind]) / done * 1e6

    others = sorted((per_job(tid, 0) for tid in after if tid != pid), reverse=True)
    kernel = sum(per_job(tid, 1) for tid in after)
    return (
        f"{system.name:9} {done / (ended - started):>7,.0f} jobs/s  CPU µs per job: "
        f"{per_job(pid, 0) + sum(others):5.1f} in all ({kernel:.1f} in the kernel), "
        f"main thread {per_job(pid, 0):5.1f} ({per_job(pid, 1):.1f}), other threads "
        f"{sum(others):4.1f} ({', '.join(f'{us:.1f}' for us in others if us > 0)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--job", default="noop_async", choices=("noop_async", "noop_sync"))
    options = parser.parse_args()
    configure_logging("console", "warning")
    measured = ("bare", "pj_async" if options.job == "noop_async" else "pj_sync")
    with benchmark_broker() as broker, tempfile.TemporaryDirectory() as directory:
        client = PulsarjobsClient(broker.settings)
        systems = [s for s in pulsar_systems(client, Tuning(32, 1, 1000)) if s.name in measured]
        for _ in range(options.repeat):
            for system in systems:
                print(measure(system, options.jobs, Path(directory)), flush=True)


if __name__ == "__main__":
    main()
