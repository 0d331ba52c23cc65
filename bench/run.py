"""The benchmark: pulsarjobs against a bare pulsar-client loop, Celery and Dramatiq, in one run.

    python -m bench.run --jobs 200000          # the full run (see docs/benchmarks.md)
    python -m bench.run --jobs 5000 --repeat 1 # a quick look

It starts a local Pulsar (unless PULSARJOBS_SERVICE_URL names one) and a Redis for the peers,
then measures, each figure `--repeat` times with the systems interleaved (noise on a shared
machine then hits them alike): enqueue rates, drain throughput with one and two worker
processes, enqueue-to-start latency at a fixed rate, and the lateness of scheduled jobs. Every
run and the medians go to a JSON file; a plot and a Markdown table are made from it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import record
from bench.broker import BenchBroker, benchmark_broker
from bench.environment import environment
from bench.redis_server import RedisServer, missing, redis_server
from bench.report import plot, save, table
from bench.systems import (
    PulsarjobsClient,
    System,
    Tuning,
    peer_systems,
    pulsar_systems,
    worker_env,
)
from bench.workers import ROOT, WorkerFailed, Workers, watch_drain
from pulsarjobs.logs import configure_logging

PHASES = ("enqueue", "drain", "latency", "scheduled")
WARM_UP_JOBS = 20
SEND_TICK = 0.002  # the producer sends what is due every 2 ms
SCHEDULE_WINDOW = 500  # scheduled enqueue calls in flight at once (500 was fastest)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--jobs", type=int, default=200_000, help="jobs per drain run")
    add("--repeat", type=int, default=3, help="runs of every figure; medians are reported")
    add("--concurrency", type=int, default=32, help="pulsarjobs: jobs at once per process")
    add(
        "--prefetch",
        type=int,
        default=1000,
        help="pulsarjobs: jobs a worker's client holds per queue; 1000 is its setting for many "
        "short jobs (the worker's default is 4 x concurrency)",
    )
    add(
        "--dramatiq-threads",
        type=int,
        default=None,
        help="Dramatiq: threads per process (default: --concurrency, the same jobs in flight)",
    )
    add("--latency-seconds", type=float, default=10.0, help="length of each latency run")
    add(
        "--latency-rate",
        type=float,
        default=None,
        help="base rate for the latency runs (default: pulsarjobs' measured drain rate)",
    )
    add(
        "--loads",
        default="5,20,50,80",
        help="latency runs, in percent of the base rate (5%%: every system keeps up)",
    )
    add("--scheduled", type=int, default=10_000, help="scheduled jobs per lateness run")
    add("--schedule-seconds", type=float, default=30.0, help="the span they are due over")
    add(
        "--scheduled-repeat",
        type=int,
        default=None,
        help="runs of the scheduled phase (default: --repeat); 1 saves minutes per run",
    )
    add(
        "--scheduled-systems",
        default="pj_async",
        help="systems whose lateness is measured: pj_async, and bare for the broker's own",
    )
    add(
        "--scheduled-log-level",
        default="info",
        help="the pulsarjobs worker's log level in the scheduled runs: info, as shipped, writes "
        "a line per job (the drain and latency runs log at warning)",
    )
    add(
        "--warm-up-jobs",
        type=int,
        default=20_000,
        help="a bare drain of this many jobs (at most --jobs) before the first measured one, "
        "unrecorded: the broker's JVM is warm for every system (0: none)",
    )
    add("--without-peers", action="store_true", help="Pulsar systems only: no Redis, Celery...")
    add("--systems", default=None, help="a subset, e.g. pj_async,celery (default: all)")
    add(
        "--broker-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for the broker this run starts, e.g. journalFlushWhenQueueEmpty=true",
    )
    add("--phases", default=",".join(PHASES), help="a subset of " + ",".join(PHASES))
    add("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    add("--plot", type=Path, default=ROOT / "docs" / "benchmarks.png")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_options(argv)
    phases = [phase.strip() for phase in options.phases.split(",") if phase.strip()]
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise SystemExit(f"unknown phases {sorted(unknown)}; choose from {', '.join(PHASES)}")
    skipped = "--without-peers was given" if options.without_peers else None
    if not skipped and (reason := missing()):
        raise SystemExit(f"cannot run Celery and Dramatiq: {reason} (or pass --without-peers)")
    configure_logging("console", "warning")  # pulsarjobs logs each enqueue at debug level
    with ExitStack() as stack:
        broker = stack.enter_context(benchmark_broker(broker_settings(options)))
        redis = None if skipped else stack.enter_context(redis_server())
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pulsarjobs-bench-")))
        bench = Bench(broker, redis, work, options)
        stack.callback(bench.close)
        results = bench.run(phases, skipped)
    plot_written = plot(results, options.plot)
    print(table(results))
    print(f"\nfigures: {options.out}" + (f", plot: {options.plot}" if plot_written else ""))


class Bench:
    def __init__(
        self,
        broker: BenchBroker,
        redis: RedisServer | None,
        work: Path,
        options: argparse.Namespace,
    ) -> None:
        self.settings = broker.settings
        self.redis_url = redis.url if redis else None
        self.work = work
        self.options = options
        tuning = Tuning(
            options.concurrency,
            options.dramatiq_threads or options.concurrency,
            options.prefetch,
        )
        self.pulsar = PulsarjobsClient(self.settings)
        self.systems = pulsar_systems(self.pulsar, tuning)
        for system in self.systems:
            system.server_pid = broker.pid
        if redis:
            self.systems += peer_systems(redis.url, tuning)
            for system in self.systems[-2:]:
                system.server_pid = redis.pid
        if options.systems:
            chosen = {name.strip() for name in options.systems.split(",")}
            self.systems = [system for system in self.systems if system.name in chosen]
        self.runs = 0
        self.results: dict[str, Any] = {}

    def close(self) -> None:
        for client in {id(system.client): system.client for system in self.systems}.values():
            client.close()

    def run(self, phases: list[str], skipped: str | None) -> dict[str, Any]:
        self.results = {
            "environment": environment(self.settings, self.redis_url),
            "options": options_record(self.options),
            "systems": {system.name: system.label for system in self.systems},
            "skipped": {"celery": skipped, "dramatiq": skipped} if skipped else {},
            "errors": [],
        }
        drains: dict[str, dict[str, list[dict[str, float]]]] = {"1": {}, "2": {}}
        enqueues: dict[str, dict[str, list[float]]] = {}
        if "drain" in phases and self.options.warm_up_jobs > 0:
            self.warm_up(min(self.options.warm_up_jobs, self.options.jobs))
        for repeat in range(self.options.repeat):
            order = rotated(self.systems, repeat)
            if "enqueue" in phases:
                self.enqueue_round(order, enqueues)
            if "drain" in phases:
                for processes in ("1", "2"):
                    self.drain_round(order, int(processes), drains[processes], enqueues)
            self.results["drain"] = {p: summarise_runs(runs) for p, runs in drains.items() if runs}
            self.results["enqueue"] = summarise_enqueues(enqueues)
            self.results["ratios"] = ratios(drains)
            self.save()
        if "latency" in phases:
            self.results["latency"] = self.latency_phase()
            self.save()
        if "scheduled" in phases:
            self.scheduled_phase()
        self.results["environment"]["load_average_end"] = list(os.getloadavg())
        self.save()
        return self.results

    def save(self) -> None:
        save(self.results, self.options.out)

    # -- runs ------------------------------------------------------------------------------

    @contextmanager
    def workers(
        self, system: System, processes: int, latency: bool = False, log_level: str = "warning"
    ) -> Iterator[Any]:
        """Started workers and the directory their handlers stamp into; stopped afterwards."""
        self.runs += 1
        records = self.work / f"records-{self.runs}"
        records.mkdir()
        env = worker_env(self.settings, self.redis_url, str(records))
        log = self.work / f"{self.runs}-{system.name}.log"
        commands = system.worker_commands(processes, latency, log_level)
        workers = Workers.start(commands, env, log)
        try:
            yield workers, records
        finally:
            workers.stop()
            system.client.reset()

    def failed(self, what: str, error: Exception) -> None:
        say(f"FAILED {what}: {error}")
        self.results["errors"].append(f"{what}: {str(error)[:2000]}")

    def enqueue_round(self, order: list[System], enqueues: dict[str, Any]) -> None:
        count = max(100, min(2_000, self.options.jobs // 20))
        done = set()
        for system in order:
            client = system.client
            if client.library in done:
                continue
            done.add(client.library)
            client.fresh_queue("single")
            rate = client.single(system.noop_job, count)
            client.reset()
            enqueues.setdefault(client.library, {"single": [], "bulk": []})["single"].append(rate)
            say(f"enqueue one by one  {client.library:10} {rate:9,.0f} jobs/s")

    def warm_up(self, count: int) -> None:
        """A bare drain nobody records: the broker's JIT compiles its dispatch path before
        the first measured run (the first drain after start-up was up to 3x slower)."""
        bare = next(s for s in pulsar_systems(self.pulsar, Tuning(1, 1)) if s.name == "bare")
        bare.client.fresh_queue("warm_up")
        bare.client.bulk(bare.noop_job, count)
        try:
            with self.workers(bare, 1) as (workers, _):
                figures = watch_drain(workers, bare.client.pending, count)
        except WorkerFailed as error:
            self.failed("warm-up drain", error)
            return
        say(f"warm-up drain (not recorded): {figures['jobs_per_s']:,.0f} jobs/s")

    def drain_round(
        self,
        order: list[System],
        processes: int,
        drains: dict[str, list[dict[str, float]]],
        enqueues: dict[str, Any],
    ) -> None:
        count = self.options.jobs
        for system in order:
            client = system.client
            client.fresh_queue(system.name)
            bulk = client.bulk(system.noop_job, count)
            enqueues.setdefault(client.library, {"single": [], "bulk": []})["bulk"].append(bulk)
            try:
                with self.workers(system, processes) as (workers, _):
                    figures = watch_drain(workers, client.pending, count, system.server_pid)
            except WorkerFailed as error:
                self.failed(f"drain {system.name} x{processes}", error)
                continue
            drains.setdefault(system.name, []).append(figures)
            say(
                f"drain x{processes} {system.name:10} {figures['jobs_per_s']:9,.0f} jobs/s  "
                f"{figures['cpu_s_per_1000']:.3f} CPU s/1000  "
                f"{figures['peak_rss_mb']:.0f} MB  (bulk enqueue {bulk:,.0f}/s)"
            )

    def latency_phase(self) -> dict[str, Any]:
        base = self.options.latency_rate or self.results.get("drain", {}).get("1", {}).get(
            "pj_async", {}
        ).get("median", {}).get("jobs_per_s")
        if not base:
            raise SystemExit("latency runs need --latency-rate or the drain phase")
        loads = [float(share) for share in self.options.loads.split(",")]
        rates = {f"{share:g}%": share / 100 * base for share in loads}
        runs: dict[str, dict[str, list[dict[str, float]]]] = {load: {} for load in rates}
        systems = [s for s in self.systems if not s.name.startswith("pj_sync")]  # one flavour
        for repeat in range(self.options.repeat):
            for system in rotated(systems, repeat):
                try:
                    measured = self.latency_once(system, rates)
                except WorkerFailed as error:
                    self.failed(f"latency {system.name}", error)
                    continue
                for load, figures in measured.items():
                    runs[load].setdefault(system.name, []).append(figures)
        return {
            "rates": rates,
            **{
                load: {name: {"runs": r, "median": medians(r)} for name, r in by_system.items()}
                for load, by_system in runs.items()
            },
        }

    def latency_once(self, system: System, rates: dict[str, float]) -> dict[str, dict[str, float]]:
        client = system.client
        client.fresh_queue("latency")
        with self.workers(system, 1, latency=True) as (workers, records):
            self.offer(system, WARM_UP_JOBS, 0.0, workers, records)  # the worker is up
            measured = {}
            for load, rate in rates.items():
                started_ns = time.time_ns()
                total = max(1, round(rate * self.options.latency_seconds))
                sent_rate = self.offer(system, total, rate, workers, records)
                pairs = [(ref, start) for ref, start in record.read(records) if ref >= started_ns]
                measured[load] = latency_figures(pairs, total, sent_rate)
                say(
                    f"latency {load} {system.name:10} p50 {measured[load]['p50_ms']:8.1f} ms  "
                    f"p99 {measured[load]['p99_ms']:8.1f} ms  "
                    f"p99.9 {measured[load]['p999_ms']:8.1f} ms  at {sent_rate:,.0f}/s"
                )
        return measured

    def offer(
        self, system: System, total: int, rate: float, workers: Workers, records: Path
    ) -> float:
        """Send `total` stamped jobs at `rate` (0: at once), then wait until all started."""
        expected = record.count(records) + total
        sent_rate = asyncio.run(produce(system, total, rate))
        deadline = time.monotonic() + 60 + total / 100  # an overloaded system may lag far
        while record.count(records) < expected:
            workers.check_alive()
            if time.monotonic() > deadline:
                break  # reported as fewer jobs handled than sent
            time.sleep(0.1)
        return sent_rate

    def scheduled_phase(self) -> None:
        """Lateness of scheduled jobs: pulsarjobs' worker, and with `--scheduled-systems
        bare,pj_async` the bare client on the same broker (what the broker alone adds)."""
        chosen = {name.strip() for name in self.options.scheduled_systems.split(",")}
        systems = [s for s in self.systems if s.name in chosen and s.name in ("bare", "pj_async")]
        runs: dict[str, list[dict[str, float]]] = {}
        repeats = self.options.scheduled_repeat or self.options.repeat
        for repeat in range(repeats):
            for system in rotated(systems, repeat):
                try:
                    figures = self.scheduled_once(system)
                except WorkerFailed as error:
                    self.failed(f"scheduled {system.name}", error)
                    continue
                runs.setdefault(system.name, []).append(figures)
            scheduled: dict[str, Any] = {}
            for name, measured in runs.items():
                summary = {"runs": measured, "median": medians(measured)}
                if name == "pj_async":  # the figure the targets name, where it always was
                    scheduled.update(summary)
                else:
                    scheduled[name] = summary
            self.results["scheduled"] = scheduled
            self.save()

    def scheduled_once(self, system: System) -> dict[str, float]:
        count, span = self.options.scheduled, self.options.schedule_seconds
        client = system.client
        assert isinstance(client, PulsarjobsClient)  # the scheduled systems are Pulsar's
        queue = client.fresh_queue(f"scheduled_{system.name}")
        level = self.options.scheduled_log_level
        with self.workers(system, 1, latency=True, log_level=level) as (workers, records):
            # Warm-up and calibration: jobs spaced as the scheduled ones and sent the same way,
            # but due already; the rate they go out at sets how far ahead the first is due.
            now_ms = time.time_ns() // 10**6
            calibration = max(100, min(5_000, count // 20))
            past = [now_ms - round(i * span * 1000 / count) for i in range(calibration, 0, -1)]
            started = time.perf_counter()
            asyncio.run(schedule_all(client, queue, past))
            rate = calibration / max(time.perf_counter() - started, 1e-6)
            wait_for_records(records, calibration, workers, 60)  # the worker is up
            # All enqueued before the first is due: twice the time the calibration's rate
            # gives, as a long run's rate fell to 0.7 of it (a job stored after its due time
            # would count its enqueue as lateness).
            lead_ms = round(3000 + 2000 * count / rate)
            first_due_ms = time.time_ns() // 10**6 + lead_ms
            due = [first_due_ms + round(i * span * 1000 / count) for i in range(count)]
            asyncio.run(schedule_all(client, queue, due))
            enqueued_ms = time.time_ns() // 10**6
            if enqueued_ms >= first_due_ms:
                say(f"scheduled {system.name}: enqueueing took longer than the {lead_ms} ms lead")
            wait_for_records(records, calibration + count, workers, span + 120)
        pairs = [pair for pair in record.read(records) if pair[0] >= first_due_ms * 10**6]
        figures = lateness_figures(pairs, count)
        figures["enqueued_before_first_due"] = float(enqueued_ms < first_due_ms)
        figures["enqueue_per_s"] = count / max((enqueued_ms - first_due_ms + lead_ms) / 1000, 1e-3)
        say(
            f"scheduled {system.name:8} {count} over {span:.0f} s: lateness "
            f"p50 {figures['p50_ms']:.1f} ms  p99 {figures['p99_ms']:.1f} ms  "
            f"p99.9 {figures['p999_ms']:.1f} ms  max {figures['max_ms']:.1f} ms  "
            f"early {figures['early']:.0f}  (enqueued at {figures['enqueue_per_s']:,.0f}/s)"
        )
        return figures


# -- producing -------------------------------------------------------------------------------


async def produce(system: System, total: int, rate: float) -> float:
    """Send at a fixed rate: every tick, whatever is due by now (0: all at once). Each job is
    stamped just before the call that sends it. Returns the rate achieved."""
    sends: list[asyncio.Task[None]] = []
    sent = 0
    started = time.perf_counter()
    while sent < total:
        elapsed = time.perf_counter() - started
        due = total if rate <= 0 else min(total, int(elapsed * rate) + 1)
        if due > sent:
            send = system.client.send_stamped(system.latency_job, due - sent)
            sends.append(asyncio.create_task(send))  # acks are awaited while the next go out
            sent = due
        await asyncio.sleep(SEND_TICK)
    await asyncio.gather(*sends)
    return total / max(time.perf_counter() - started, 1e-9)


async def schedule_all(client: PulsarjobsClient, queue: str, due_ms: list[int]) -> None:
    """In due order, the jobs due at one millisecond in one `enqueue_many_async(calls, at=...)`
    (200,000 over 60 s: three or four a call), `SCHEDULE_WINDOW` calls in flight at a time
    (gathering them all at once held every coroutine and future in memory together). Each job's
    argument is its due time in ns: the bare client stamps it as it is."""
    groups = [(ms, len(list(same))) for ms, same in itertools.groupby(sorted(due_ms))]
    for first in range(0, len(groups), SCHEDULE_WINDOW):
        await asyncio.gather(
            *(
                client.app.enqueue_many_async(
                    [client.call("scheduled_async", ms * 10**6)] * size,
                    at=EPOCH + timedelta(milliseconds=ms),
                )
                for ms, size in groups[first : first + SCHEDULE_WINDOW]
            )
        )


def wait_for_records(records: Path, count: int, workers: Workers, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while record.count(records) < count and time.monotonic() < deadline:
        workers.check_alive()
        time.sleep(0.1)


# -- figures ---------------------------------------------------------------------------------


def percentile(ordered: list[float], share: float) -> float:
    """Nearest rank; 0 for no data."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


def latency_figures(pairs: list[tuple[int, int]], sent: int, sent_rate: float) -> dict[str, float]:
    latencies = sorted((start - ref) / 1e6 for ref, start in pairs)
    last_sent = max((ref for ref, _ in pairs), default=0)
    last_start = max((start for _, start in pairs), default=0)
    return {
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "p999_ms": percentile(latencies, 0.999),
        "max_ms": latencies[-1] if latencies else 0.0,
        "sent": float(sent),
        "handled": float(len(latencies)),
        "sent_per_s": sent_rate,
        "tail_s": (last_start - last_sent) / 1e9,  # the backlog left when sending stopped
    }


def lateness_figures(pairs: list[tuple[int, int]], count: int) -> dict[str, float]:
    lateness = sorted((start - due) / 1e6 for due, start in pairs)
    return {
        "jobs": float(count),
        "handled": float(len(lateness)),
        "p50_ms": percentile(lateness, 0.5),
        "p99_ms": percentile(lateness, 0.99),
        "p999_ms": percentile(lateness, 0.999),
        "max_ms": lateness[-1] if lateness else 0.0,
        "early": float(sum(1 for value in lateness if value < 0)),
    }


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = runs[0].keys() if runs else ()
    return {key: statistics.median(run[key] for run in runs) for key in keys}


def summarise_runs(by_system: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    return {name: {"runs": runs, "median": medians(runs)} for name, runs in by_system.items()}


def summarise_enqueues(enqueues: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    return {
        library: {
            kind: {"runs": rates, "median": statistics.median(rates) if rates else None}
            for kind, rates in kinds.items()
        }
        for library, kinds in enqueues.items()
    }


def ratios(drains: dict[str, dict[str, list[dict[str, float]]]]) -> dict[str, Any]:
    """pulsarjobs async over each other system: of the medians, and the median of the ratios
    within each repeat (systems of one repeat ran side by side, so they saw the same noise).
    Also pulsarjobs sync over the bare client, and each pulsarjobs flavour's two processes
    over its one (`pj_sync_vs_raw`, `pj_async_2_vs_1_processes`, ...)."""
    found: dict[str, Any] = {}

    def add(name: str, ups: list[float], downs: list[float]) -> None:
        if not ups or not downs:
            return
        found[name] = statistics.median(ups) / statistics.median(downs)
        paired = [a / b for a, b in zip(ups, downs, strict=False)]
        found.setdefault("paired", {})[name] = statistics.median(paired)

    def rates(processes: str, system: str) -> list[float]:
        return [run["jobs_per_s"] for run in drains.get(processes, {}).get(system, [])]

    for processes in drains:
        suffix = "" if processes == "1" else f"_{processes}_processes"
        for other, key in (("bare", "raw"), ("celery", "celery"), ("dramatiq", "dramatiq")):
            add(f"drain_vs_{key}{suffix}", rates(processes, "pj_async"), rates(processes, other))
        add(f"pj_sync_vs_raw{suffix}", rates(processes, "pj_sync"), rates(processes, "bare"))
        add(f"pj_sync_mixed_vs_raw{suffix}", rates(processes, "pj_sync_mixed"),
            rates(processes, "bare"))  # fmt: skip
    for system in ("bare", "pj_async", "pj_sync", "pj_sync_mixed"):
        add(f"{system}_2_vs_1_processes", rates("2", system), rates("1", system))
    return found


def rotated(systems: list[System], repeat: int) -> list[System]:
    shift = repeat % len(systems)
    return systems[shift:] + systems[:shift]


def broker_settings(options: argparse.Namespace) -> dict[str, str]:
    pairs = [setting.partition("=") for setting in options.broker_setting]
    if any(not key or not sep for key, sep, _ in pairs):
        raise SystemExit("--broker-setting takes KEY=VALUE")
    return {key: value for key, _, value in pairs}


def options_record(options: argparse.Namespace) -> dict[str, Any]:
    """The options, without the output paths (they name this machine's directories)."""
    return {k: v for k, v in vars(options).items() if k not in ("out", "plot")}


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
