"""What durable jobs cost, on a real broker: a step, their drain beside plain jobs, a sleep's
lateness and a signal's delivery time.

    python -m bench.durable_cost [--jobs 20000] [--repeat 3] [--out FILE.json]

It starts a local Pulsar (unless PULSARJOBS_SERVICE_URL names one). Every round, each on a
namespace of its own and with a worker process of its own (`pulsarjobs worker
bench.durable_app:app`, as bench.run starts it: `--concurrency 32 --prefetch 1000`, logging at
warning):
- drain: `--jobs` plain no-op jobs, and as many durable jobs of one no-op step, preloaded,
  then drained; the two in turn, their order rotated round by round so that a noisy machine
  hits them alike. jobs/s from 10% to 90% drained, the worker's and the broker's CPU per 1,000
  jobs (bench/workers.py);
- step: `--steps` durable jobs enqueued one by one (each awaited, 10 ms apart), each timing its
  `await ctx.step` of a no-op: the value stored on the broker and acknowledged;
- sleep: `--sleeps` durable jobs sleeping 2 to 5 s (`ctx.sleep`; `--sleep-ms`): lateness =
  when the job's code past the sleep ran - the wake-up time stored for the sleep, and how many
  ran early;
- signal: `--signals` durable jobs parked on keys of their own (`ctx.wait_for`); once all are
  parked, this process signals them one by one (`app.signal`): delivery = when the job's code
  past the wait ran - when `app.signal` returned.
Every run, the medians and the ratio durable / plain (of the medians, and the median of the
per-round ratios) go to `--out` (bench/results/durable.json).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.broker import BenchBroker, benchmark_broker, fresh_namespace
from bench.durable_app import notes
from bench.environment import environment
from bench.report import rounded, save, say
from bench.systems import PYTHON, PulsarjobsClient, worker_env
from bench.workers import ROOT, WorkerFailed, Workers, watch_drain
from pulsarjobs.app import App, JobCall
from pulsarjobs.logs import configure_logging
from pulsarjobs.settings import Settings
from pulsarjobs.workflows.durable_store import decode_record

KINDS = {"plain": "plain_noop", "durable": "durable_noop"}  # drained, in turn: their jobs
STEP_GAP_S = 0.01
WAIT_TIMEOUT_S = 600.0  # the waiters' timeout: far beyond the run


def parse_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--jobs", type=int, default=20_000, help="jobs per drain, plain and durable alike")
    add("--repeat", type=int, default=3, help="rounds; medians are reported")
    add("--steps", type=int, default=200, help="durable jobs timing their step, per round")
    add("--sleeps", type=int, default=500, help="durable jobs sleeping 2-5 s, per round")
    add("--sleep-ms", default="2000,5000", help="the sleeps' shortest and longest, in ms")
    add("--signals", type=int, default=200, help="durable jobs waiting for a signal, per round")
    add("--concurrency", type=int, default=32, help="the worker's jobs at once")
    add("--prefetch", type=int, default=1000, help="jobs the worker's client holds")
    add("--warm-up-jobs", type=int, default=5_000, help="plain and durable, unrecorded (0: none)")
    add("--phases", default="drain,step,sleep,signal", help="a subset of drain,step,sleep,signal")
    add("--out", type=Path, default=ROOT / "bench" / "results" / "durable.json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_options(argv)
    phases = {phase.strip() for phase in options.phases.split(",") if phase.strip()}
    if unknown := phases - {"drain", "step", "sleep", "signal"}:
        raise SystemExit(f"unknown phases {sorted(unknown)}")
    configure_logging("console", "warning")
    with benchmark_broker() as broker, tempfile.TemporaryDirectory(prefix="durable-") as work:
        bench = Bench(broker, Path(work), options)
        results = bench.run(phases)
    print(json.dumps(summary(results), indent=2))
    print(f"figures: {options.out}", file=sys.stderr)


class Bench:
    def __init__(self, broker: BenchBroker, work: Path, options: argparse.Namespace) -> None:
        self.broker = broker
        self.work = work
        self.options = options
        self.runs = 0
        self.results: dict[str, Any] = {
            "environment": environment(broker.settings, None),
            "options": {k: v for k, v in vars(options).items() if k != "out"},
            "errors": [],
        }

    def run(self, phases: set[str]) -> dict[str, Any]:
        drains: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
        timed: dict[str, list[dict[str, float]]] = {"step": [], "sleep": [], "signal": []}
        if "drain" in phases and self.options.warm_up_jobs > 0:
            for kind in KINDS:  # the broker's JIT and the steps topic's path, before measuring
                self.drain(kind, min(self.options.warm_up_jobs, self.options.jobs))
        for round_ in range(self.options.repeat):
            if "drain" in phases:
                kinds = list(KINDS)
                for kind in kinds[round_ % 2 :] + kinds[: round_ % 2]:
                    if (figures := self.drain(kind, self.options.jobs)) is not None:
                        drains[kind].append(figures)
            if phases & set(timed):
                for name, figures in self.timed_round(phases).items():
                    timed[name].append(figures)
            self.results["drain"] = {kind: with_median(runs) for kind, runs in drains.items()}
            self.results["drain_ratio"] = drain_ratio(drains)
            for name, runs in timed.items():
                if runs:
                    self.results[name] = with_median(runs)
            self.save()
        self.results["environment"]["load_average_end"] = list(os.getloadavg())
        self.save()
        return self.results

    def save(self) -> None:
        save(self.results, self.options.out)

    @contextmanager
    def worker(self, settings: Settings, queue: str, name: str) -> Iterator[tuple[Workers, Path]]:
        self.runs += 1
        records = self.work / f"records-{self.runs}"
        records.mkdir()
        command = [PYTHON, "-m", "pulsarjobs", "worker", "bench.durable_app:app",
                   "--queues", queue, "--concurrency", str(self.options.concurrency),
                   "--prefetch", str(self.options.prefetch), "--log-level", "warning"]  # fmt: skip
        env = worker_env(settings, None, str(records))
        workers = Workers.start([command], env, self.work / f"{self.runs}-{name}.log")
        try:
            yield workers, records
        finally:
            workers.stop()

    def drain(self, kind: str, count: int) -> dict[str, float] | None:
        client = PulsarjobsClient(fresh_namespace(self.broker.settings))
        try:
            client.fresh_queue(kind)
            client.bulk(KINDS[kind], count)
            with self.worker(client.settings, client.queue, kind) as (workers, _):
                figures = watch_drain(workers, client.pending, count, self.broker.pid)
        except WorkerFailed as error:
            self.failed(f"drain {kind}", error)
            return None
        finally:
            client.close()
        say(f"drain {kind:8} {count:7,} jobs {figures['jobs_per_s']:9,.0f} jobs/s  "
            f"worker {figures['cpu_s_per_1000']:.3f} CPU s/1000  "
            f"broker {figures.get('server_cpu_s_per_1000', 0):.3f}")  # fmt: skip
        return figures

    def failed(self, what: str, error: Exception) -> None:
        say(f"FAILED {what}: {error}")
        self.results["errors"].append(f"{what}: {str(error)[:2000]}")

    def timed_round(self, phases: set[str]) -> dict[str, dict[str, float]]:
        """The step, sleep and signal phases, in one namespace with one worker."""
        settings = fresh_namespace(self.broker.settings)
        app, queue = App(settings), "timed"
        found: dict[str, dict[str, float]] = {}
        try:
            with self.worker(settings, queue, "timed") as (workers, records):
                # The worker's first durable run (its steps reader made) is not measured.
                app.enqueue(JobCall("timed_step", args=(-1,), queue=queue))
                wait_for_notes(workers, records, "step", 1, 120)
                if "step" in phases:
                    found["step"] = self.step_phase(app, queue, workers, records)
                if "sleep" in phases:
                    found["sleep"] = self.sleep_phase(app, queue, workers, records)
                if "signal" in phases:
                    found["signal"] = self.signal_phase(app, queue, workers, records)
        except WorkerFailed as error:
            self.failed("timed phases", error)
        finally:
            app.close()
        return found

    def step_phase(self, app: App, queue: str, workers: Workers, records: Path) -> dict[str, float]:
        count = self.options.steps
        for n in range(count):
            app.enqueue(JobCall("timed_step", args=(n,), queue=queue))
            time.sleep(STEP_GAP_S)
        noted = wait_for_notes(workers, records, "step", count + 1, 120)
        figures = {"jobs": count, **spread([(at - began) / 1e6 for began, at in noted[1:]])}
        say(f"step     {count:5} timed   p50 {figures['p50_ms']:.2f} ms, "
            f"p99 {figures['p99_ms']:.2f} ms")  # fmt: skip
        return figures

    def sleep_phase(
        self, app: App, queue: str, workers: Workers, records: Path
    ) -> dict[str, float]:
        count, chosen = self.options.sleeps, random.Random(26)
        shortest, longest = (int(ms) for ms in self.options.sleep_ms.split(","))
        calls = [JobCall("sleeper", args=(n, chosen.randint(shortest, longest)), queue=queue)
                 for n in range(count)]  # fmt: skip
        ids = app.enqueue_many(calls)
        woke = dict(wait_for_notes(workers, records, "woke", count, longest / 1000 + 120))
        lateness = []
        for n, job_id in enumerate(ids):
            wakes_at = decode_record(app.step_store.read(job_id)["sleep-1"]).wakes_at
            assert wakes_at is not None
            lateness.append((woke[n] - round(wakes_at.timestamp() * 1000) * 10**6) / 1e6)
        figures = {"jobs": count, **spread(lateness), "early": sum(ms < 0 for ms in lateness)}
        say(f"sleep    {count:5} jobs    lateness p50 {figures['p50_ms']:.1f} ms, "
            f"p99 {figures['p99_ms']:.1f} ms, max {figures['max_ms']:.1f} ms, "
            f"{figures['early']} early")  # fmt: skip
        return figures

    def signal_phase(
        self, app: App, queue: str, workers: Workers, records: Path
    ) -> dict[str, float]:
        count = self.options.signals
        keys = [f"bench-{queue}-{n}" for n in range(count)]
        app.enqueue_many([JobCall("waiter", args=(n, key, WAIT_TIMEOUT_S), queue=queue)
                          for n, key in enumerate(keys)])  # fmt: skip
        deadline = time.monotonic() + 120
        while len(app.signals.waiting()) < count:
            workers.check_alive()
            if time.monotonic() > deadline:
                raise WorkerFailed(f"not all {count} jobs parked:\n{workers.tail()}")
            time.sleep(0.1)
        called, returned = [], []
        for key in keys:
            called.append(time.time_ns())
            resumed = app.signal(key)
            returned.append(time.time_ns())
            assert resumed == 1, f"{key} resumed {resumed} jobs"
        noted = dict(wait_for_notes(workers, records, "signalled", count, 120))
        delivery = [(noted[n] - returned[n]) / 1e6 for n in range(count)]
        from_call = [(noted[n] - called[n]) / 1e6 for n in range(count)]
        figures = {
            "jobs": count,
            **spread(delivery),
            "from_call_p50_ms": statistics.median(from_call),
            "signal_call_p50_ms": statistics.median(
                (b - a) / 1e6 for a, b in zip(called, returned, strict=True)
            ),
            "before_return": sum(ms < 0 for ms in delivery),
        }
        say(f"signal   {count:5} jobs    delivery p50 {figures['p50_ms']:.1f} ms, "
            f"p99 {figures['p99_ms']:.1f} ms (app.signal itself p50 "
            f"{figures['signal_call_p50_ms']:.1f} ms)")  # fmt: skip
        return figures


def wait_for_notes(
    workers: Workers, records: Path, kind: str, count: int, timeout: float
) -> list[tuple[int, int]]:
    """The notes of `kind` once `count` are there, in the order noted."""
    deadline = time.monotonic() + timeout
    while len(noted := notes(records, kind)) < count:
        workers.check_alive()
        if time.monotonic() > deadline:
            raise WorkerFailed(f"{len(noted)} of {count} {kind} notes:\n{workers.tail()}")
        time.sleep(0.05)
    return sorted(noted, key=lambda pair: pair[1])


def spread(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)
    return {
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max_ms": ordered[-1],
        "min_ms": ordered[0],
    }


def with_median(runs: list[dict[str, float]]) -> dict[str, Any]:
    if not runs:
        return {"runs": [], "median": {}}
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    return {"runs": runs, "median": median}


def drain_ratio(drains: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    """Durable over plain: jobs/s and worker CPU per job (of the medians; the median of the
    rounds'). A figure that rounds to 0 over few jobs (CPU ticks) gives no ratio."""
    plain, durable = drains["plain"], drains["durable"]
    figures: dict[str, float] = {}
    for key in ("jobs_per_s", "cpu_s_per_1000"):
        rounds = [d[key] / p[key] for p, d in zip(plain, durable, strict=False) if p[key]]
        if rounds and (base := statistics.median(r[key] for r in plain)):
            figures[key] = statistics.median(r[key] for r in durable) / base
            figures[f"{key}_per_round"] = statistics.median(rounds)
    return figures


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The medians and ratios, rounded, for the console."""
    found = {f"drain_{kind}": runs["median"] for kind, runs in results.get("drain", {}).items()}
    found["drain_ratio"] = results.get("drain_ratio", {})
    for name in ("step", "sleep", "signal"):
        if name in results:
            found[name] = results[name]["median"]
    found["errors"] = results["errors"]
    return rounded(found)


if __name__ == "__main__":
    main()
