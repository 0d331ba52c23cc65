"""What reporting progress costs a job: a tight loop of progress calls against the same loop
without, timed inside a running job.

    python -m bench.progress_cost [--number 1000000]

The job runs in the in-memory TestRunner, through the worker's own JobExecutor, so `current_job()`
is what a worker's job gets. Three loops of `--number` steps, each step adding to a sum: without
progress; with `job.progress(i, n)` on a handle taken once; with `current_job().progress(i, n)`
each step. Each is timed 5 times, the best kept; the ratio is against the loop without.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

REPEAT = 5


def best_seconds(loop: Callable[[], None]) -> float:
    timings = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        loop()
        timings.append(time.perf_counter() - started)
    return min(timings)


def measure(number: int) -> dict[str, float]:
    from pulsarjobs import App, Settings, current_job
    from pulsarjobs.testing import TestRunner

    app = App(Settings())
    timings: dict[str, float] = {}

    @app.job
    def tight_loop(n: int) -> None:
        job = current_job()

        def without() -> None:
            total = 0
            for i in range(n):
                total += i

        def with_handle() -> None:
            total = 0
            for i in range(n):
                total += i
                job.progress(i, n)

        def with_lookup() -> None:
            total = 0
            for i in range(n):
                total += i
                current_job().progress(i, n)

        timings["without progress"] = best_seconds(without)
        timings["job.progress(i, n)"] = best_seconds(with_handle)
        timings["current_job().progress(i, n)"] = best_seconds(with_lookup)

    with TestRunner(app) as runner:
        tight_loop.enqueue(number)
        runner.run_all()
        [outcome] = runner.outcomes
        assert outcome.kind == "done", outcome
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=1_000_000)
    number = parser.parse_args().number
    timings = measure(number)
    base = timings["without progress"]
    print(f"{number:,} steps, best of {REPEAT}:")
    for name, seconds in timings.items():
        added = (seconds - base) / number * 1e9
        print(f"  {name:<30} {seconds * 1000:8.1f} ms  x{seconds / base:5.2f}  "
              f"(+{added:.0f} ns a step)")  # fmt: skip


if __name__ == "__main__":
    main()
