"""What the job index costs (pulsarjobs/transport/job_index.py): CPU per enqueue and per settle,
and the time of one enqueue, with the index and without it.

    python -m bench.job_index_cost [--jobs 20000] [--number 300]

On the broker named by PULSARJOBS_SERVICE_URL / PULSARJOBS_ADMIN_URL (a namespace of its own).
Per enqueue: the process's CPU time (every thread: the client's, which hears the broker's ack,
and the index's, which sends the entries) to enqueue `--jobs` jobs with `enqueue_many` and close
the app (its index sent and stored), divided by the jobs, with the index and with it replaced by
one that writes nothing; and the median wall time of `--number` single enqueues, both ways;
how fast a lookup reads the index it made. Per
settle: the CPU time of what a worker's step does for a job done (`IndexedSettles.told`), and of
sending the emptied entries, per job.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from typing import Any

from pulsarjobs.app import App, JobCall
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.operations.job_lookup import read_entry
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.answers import Acks
from pulsarjobs.transport.job_index import IndexedSettles, JobIndex
from pulsarjobs.wire.envelope import Envelope, new_id
from pulsarjobs.wire.verdicts import Outcome, Verdict


class NoIndex(JobIndex):
    """The index replaced by nothing: what enqueue cost before it."""

    def acks(
        self, job_id: str, queue: str, topic: str, group: Acks | None = None,
        chain_id: str | None = None,
    ) -> Acks:  # fmt: skip
        return group or Acks(1)


def fresh_app(indexed: bool) -> App:
    base = Settings.from_env()
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    with Admin(base.admin_url, token=base.token) as admin:
        admin.ensure_namespace(f"{base.tenant}/{namespace}")
    app = App(base.with_changes(namespace=namespace))
    if not indexed:
        app.job_index = NoIndex(lambda: app.connection)

    @app.job
    def plain(n: int) -> None: ...

    app.enqueue(JobCall("plain", (-1,)))  # connection, topic and producers made before timing
    return app


def enqueue_cost(indexed: bool, jobs: int, number: int) -> dict[str, float]:
    app = fresh_app(indexed)
    times = []
    for n in range(number):
        started = time.perf_counter()
        app.enqueue(JobCall("plain", (n,)))
        times.append(time.perf_counter() - started)
    app.job_index.close()  # what it gathered, sent before the CPU is counted
    calls = [JobCall("plain", (n,)) for n in range(jobs)]
    cpu = time.process_time()
    for start in range(0, jobs, 1000):
        app.enqueue_many(calls[start : start + 1000])
    app.close()
    per_job = (time.process_time() - cpu) / jobs
    way = "indexed" if indexed else "unindexed"
    figures = {f"enqueue_cpu_us_{way}": per_job * 1e6,
               f"enqueue_ms_{way}": statistics.median(times) * 1000}  # fmt: skip
    if indexed:
        with Inspector(app.settings) as inspector:
            started = time.perf_counter()
            _, read = read_entry(inspector, "no-such-job")  # reads the whole index
            figures["index_entries_read"] = read
            figures["index_entries_read_per_second"] = read / (time.perf_counter() - started)
    return figures


def settle_cost(jobs: int) -> dict[str, float]:
    app = fresh_app(indexed=True)
    step = IndexedSettles(app.job_index)
    outcomes = [Outcome(Verdict.DONE, Envelope(new_id(), "plain", "default")) for _ in range(jobs)]
    cpu = time.process_time()
    for outcome in outcomes:
        step.told("default", outcome)
    told = (time.process_time() - cpu) / jobs
    cpu = time.process_time()
    app.close()  # sends the emptied entries now, where a worker sends them seconds later
    sent = (time.process_time() - cpu) / jobs
    return {"settle_told_cpu_us": told * 1e6, "settle_sent_cpu_us": sent * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs enqueued for the CPU")
    parser.add_argument("--number", type=int, default=300, help="single enqueues timed")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    for indexed in (False, True, False, True):  # twice each: the second of a kind is kept
        figures |= enqueue_cost(indexed, args.jobs, args.number)
    figures |= settle_cost(args.jobs)
    print(json.dumps({key: round(value, 3) for key, value in figures.items()}, indent=2))


if __name__ == "__main__":
    main()
