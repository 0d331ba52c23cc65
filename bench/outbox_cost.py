"""What the transactional outbox costs, on a real broker and a real PostgreSQL: enqueueing in a
transaction beside a plain enqueue, the relay's throughput, and commit-to-stored latency.

    python -m bench.outbox_cost [--jobs 5000] [--repeat 3] [--database URL] [--out FILE.json]

It starts a local Pulsar (unless PULSARJOBS_SERVICE_URL names one) and a throwaway PostgreSQL
(unless `--database` or PULSARJOBS_OUTBOX_DATABASE names one: its outbox table is used, and
only the rows of the run's namespaces are touched). Every round, each phase on a namespace of
its own:
- enqueue: `--jobs` jobs from this one process, one call each: `app.enqueue(call)` (returns
  once the broker stored the job), and `outbox.enqueue(session, call)` in a transaction of its
  own, committed (no relay running); the two in turn, their order rotated round by round.
  jobs/s;
- relay: `--jobs` rows committed beforehand (in transactions of 500), then `pulsarjobs outbox
  relay` started: rows/s published (the broker stored them, the rows marked) from 10% to 90%;
- latency: with a relay running (and a first job published: its producer made), one job per
  transaction committed at half the relay's measured rate for `--latency-seconds`, by
  `--writers` threads (one process commits fewer a second than the relay publishes): from the
  commit's return to the relay marking the row published, once the broker stored it, p50/p99,
  and the rate reached.
Every run and the medians go to `--out` (bench/results/outbox.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from bench.broker import benchmark_broker, fresh_namespace
from bench.durable_cost import spread, with_median
from bench.environment import environment
from bench.report import rounded, save, say
from bench.systems import PYTHON, worker_env
from bench.workers import ROOT, WorkerFailed, Workers, crossing
from pulsarjobs.app import App, JobCall
from pulsarjobs.logs import configure_logging
from pulsarjobs.outbox import Outbox, metadata, outbox_table
from pulsarjobs.outbox.store import Store
from pulsarjobs.settings import Settings

PRELOAD_BATCH = 500


def parse_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--jobs", type=int, default=5_000, help="jobs per enqueue run and per relay run")
    add("--repeat", type=int, default=3, help="rounds; medians are reported")
    add("--latency-seconds", type=float, default=10.0, help="length of each latency run")
    add("--writers", type=int, default=4, help="threads committing the latency run's jobs")
    add("--database", default=os.environ.get("PULSARJOBS_OUTBOX_DATABASE"),
        help="SQLAlchemy URL of a PostgreSQL (default: a throwaway one)")  # fmt: skip
    add("--out", type=Path, default=ROOT / "bench" / "results" / "outbox.json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_options(argv)
    configure_logging("console", "warning")
    with (
        benchmark_broker() as broker,
        database(options.database) as url,
        tempfile.TemporaryDirectory(prefix="outbox-") as work,
    ):
        engine = sa.create_engine(url, pool_size=options.writers + 1)
        metadata.create_all(engine)
        results: dict[str, Any] = {
            "environment": environment(broker.settings, None),
            "options": {k: v for k, v in vars(options).items() if k not in ("out", "database")},
            "errors": [],
        }
        bench = Bench(broker.settings, url, engine, Path(work), options, results)
        try:
            bench.run()
        finally:
            engine.dispose()
    print(json.dumps(summary(results), indent=2))
    print(f"figures: {options.out}", file=sys.stderr)


@contextmanager
def database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from tests.postgres import launched_postgres  # the test suite's throwaway PostgreSQL

    def unavailable(reason: str) -> None:
        raise SystemExit(f"no PostgreSQL for the benchmark: {reason}; give --database URL")

    yield from launched_postgres(unavailable)


class Bench:
    def __init__(
        self,
        settings: Settings,
        url: str,
        engine: sa.Engine,
        work: Path,
        options: argparse.Namespace,
        results: dict[str, Any],
    ) -> None:
        self.settings = settings
        self.url = url
        self.engine = engine
        self.work = work
        self.options = options
        self.results = results
        self.relays = 0

    def run(self) -> None:
        enqueues: dict[str, list[dict[str, float]]] = {"plain": [], "outbox": []}
        relays: list[dict[str, float]] = []
        latencies: list[dict[str, float]] = []
        for round_ in range(self.options.repeat):
            kinds = list(enqueues)
            for kind in kinds[round_ % 2 :] + kinds[: round_ % 2]:
                enqueues[kind].append(self.enqueue(kind, self.options.jobs))
            try:
                relays.append(relayed := self.relay_throughput(self.options.jobs))
                rate = relayed["rows_per_s"] / 2
                latencies.append(self.latency(rate, self.options.latency_seconds))
            except WorkerFailed as error:
                say(f"FAILED: {error}")
                self.results["errors"].append(str(error)[:2000])
            self.results["enqueue"] = {kind: with_median(runs) for kind, runs in enqueues.items()}
            self.results["relay"] = with_median(relays)
            self.results["latency"] = with_median(latencies)
            save(self.results, self.options.out)
        self.results["environment"]["load_average_end"] = list(os.getloadavg())
        save(self.results, self.options.out)

    def enqueue(self, kind: str, count: int) -> dict[str, float]:
        app = App(fresh_namespace(self.settings))
        outbox = Outbox(app)
        calls = [JobCall("noop", args=(n,), queue="bench") for n in range(count + 1)]
        try:
            if kind == "plain":
                app.enqueue(calls[0])  # the producer made, not measured
                began = time.perf_counter()
                for call in calls[1:]:
                    app.enqueue(call)
            else:
                began = time.perf_counter()
                for call in calls[1:]:
                    with Session(self.engine) as session, session.begin():
                        outbox.enqueue(session, call)
            seconds = time.perf_counter() - began
        finally:
            app.close()
        figures = {"jobs": count, "jobs_per_s": count / seconds}
        say(f"enqueue  {kind:7} {count:7,} jobs {figures['jobs_per_s']:9,.0f} jobs/s")
        return figures

    def relay_throughput(self, count: int) -> dict[str, float]:
        settings = fresh_namespace(self.settings)
        outbox = Outbox(App(settings))
        for start in range(0, count, PRELOAD_BATCH):
            calls = [JobCall("noop", args=(n,), queue="bench")
                     for n in range(start, min(count, start + PRELOAD_BATCH))]  # fmt: skip
            with Session(self.engine) as session, session.begin():
                outbox.enqueue_many(session, calls)
        store = Store(self.engine, settings.full_namespace)
        marks: dict[float, float] = {}
        with self.relay(settings) as relay:
            deadline = time.monotonic() + 120 + count / 100
            previous = (time.perf_counter(), 0.0)
            while 1.0 not in marks:  # all published before the relay is stopped
                relay.check_alive()
                if time.monotonic() > deadline:
                    raise WorkerFailed(f"the relay did not publish {count} rows:\n{relay.tail()}")
                polled = (time.perf_counter(), 1 - store.lag().pending / count)
                for mark in (0.1, 0.9, 1.0):
                    if polled[1] >= mark and mark not in marks:
                        marks[mark] = crossing(previous, polled, mark)
                previous = polled
                time.sleep(0.01)
        figures = {"rows": count, "rows_per_s": 0.8 * count / (marks[0.9] - marks[0.1])}
        say(f"relay            {count:7,} rows {figures['rows_per_s']:9,.0f} rows/s")
        return figures

    def latency(self, rate: float, seconds: float) -> dict[str, float]:
        settings = fresh_namespace(self.settings)
        outbox = Outbox(App(settings))
        store = Store(self.engine, settings.full_namespace)
        count = max(1, int(rate * seconds))
        committed: dict[str, datetime] = {}
        with self.relay(settings) as relay:
            with Session(self.engine) as session, session.begin():  # its producer made
                outbox.enqueue(session, JobCall("noop", args=(-1,), queue="bench"))
            self.published(store, relay)
            began = time.perf_counter()

            def write(first: int) -> None:  # every `writers`-th job, each at its time
                for n in range(first, count, self.options.writers):
                    if (wait := began + n / rate - time.perf_counter()) > 0:
                        time.sleep(wait)
                    with Session(self.engine) as session, session.begin():
                        call = JobCall("noop", args=(n,), queue="bench")
                        job_id = outbox.enqueue(session, call)
                    committed[job_id] = datetime.now(UTC)

            with ThreadPoolExecutor(self.options.writers) as writers:
                list(writers.map(write, range(self.options.writers)))
            reached = count / (time.perf_counter() - began)
            self.published(store, relay)
            query = sa.select(outbox_table.c.job_id, outbox_table.c.published_at).where(
                outbox_table.c.job_id.in_(list(committed))
            )
            with self.engine.connect() as connection:  # before the run's rows are deleted
                published = {job_id: at for job_id, at in connection.execute(query)}
        latencies = [(published[job_id] - at).total_seconds() * 1000
                     for job_id, at in committed.items()]  # fmt: skip
        figures = {"jobs": count, "rate_per_s": rate, "reached_per_s": reached, **spread(latencies)}
        say(f"latency  {count:5} jobs at {reached:,.0f}/s (of {rate:,.0f})  commit to stored p50 "
            f"{figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms")  # fmt: skip
        return figures

    @staticmethod
    def published(store: Store, relay: Workers, timeout: float = 120) -> None:
        """Wait until the relay published every row of the namespace."""
        deadline = time.monotonic() + timeout
        while store.lag().pending:
            relay.check_alive()
            if time.monotonic() > deadline:
                raise WorkerFailed(f"rows left unpublished:\n{relay.tail()}")
            time.sleep(0.02)

    @contextmanager
    def relay(self, settings: Settings) -> Iterator[Workers]:
        self.relays += 1
        command = [PYTHON, "-m", "pulsarjobs", "outbox", "relay", "--database", self.url,
                   "--log-level", "warning"]  # fmt: skip
        env = worker_env(settings, None, str(self.work))
        relay = Workers.start([command], env, self.work / f"relay-{self.relays}.log")
        try:
            yield relay
        finally:
            relay.kill()
            with self.engine.begin() as connection:  # the run's rows: none is left behind
                mine = Store(self.engine, settings.full_namespace).mine
                connection.execute(outbox_table.delete().where(mine))


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The medians, rounded, for the console."""
    found = {f"enqueue_{kind}": runs["median"] for kind, runs in results["enqueue"].items()}
    found["relay"] = results.get("relay", {}).get("median", {})
    found["latency"] = results.get("latency", {}).get("median", {})
    found["errors"] = results["errors"]
    return rounded(found)


if __name__ == "__main__":
    main()
