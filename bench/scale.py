"""The cost of partitions and of a cluster: one queue drained by two worker processes.

    python -m bench.scale --jobs 20000 --repeat 3 [--partitions 4] [--without-cluster]

Uses the broker PULSARJOBS_SERVICE_URL names (else starts a local standalone, as bench.run)
and starts a local cluster (ZooKeeper, three bookies, two brokers) on free ports beside it.
Each round measures, on the standalone and on the cluster, with 1 and with N partitions, the
enqueue rate (enqueue_many, 5,000 jobs a call) and the drain rate of one `pulsarjobs worker
--processes 2` (no-op async jobs, 10% to 90% drained). The variants are interleaved, so that
the noise of a shared machine hits them alike; every run, the medians and their ratios to the
standalone with one partition (within each round, then their median) go to
bench/results/cluster.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench.broker import benchmark_broker, fresh_namespace
from bench.environment import environment
from bench.systems import PulsarjobsClient, Tuning, pulsar_systems, worker_env
from bench.workers import ROOT, Workers, watch_drain
from pulsarjobs.broker.cluster import LocalCluster
from pulsarjobs.broker.cluster_ports import ClusterPorts
from pulsarjobs.logs import configure_logging
from pulsarjobs.settings import Settings

PROCESSES = 2


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per drain run")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--partitions", type=int, default=4, help="N, beside 1 partition")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--prefetch", type=int, default=1000, help="as in bench.run")
    parser.add_argument("--without-cluster", action="store_true", help="the standalone only")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cluster.json")
    options = parser.parse_args()
    configure_logging("console", "warning")
    with ExitStack() as stack:
        brokers = {"standalone": stack.enter_context(benchmark_broker()).settings}
        if not options.without_cluster:
            brokers["cluster"] = fresh_namespace(stack.enter_context(local_cluster()))
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pulsarjobs-scale-")))
        measured_on = environment(brokers["standalone"], None)
        runs = measure(brokers, options, work)
    report = summary(runs, options, measured_on)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["medians"], indent=2))


@contextmanager
def local_cluster() -> Iterator[Settings]:
    data_dir = Path(tempfile.mkdtemp(prefix="pulsarjobs-scale-cluster-"))
    cluster = LocalCluster(data_dir=data_dir, ports=ClusterPorts.free())
    try:
        cluster.start()
        yield Settings(service_url=cluster.service_url, admin_url=cluster.admin_url)
    finally:
        cluster.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def measure(
    brokers: dict[str, Settings], options: argparse.Namespace, work: Path
) -> list[dict[str, Any]]:
    runs = []
    tuning = Tuning(options.concurrency, options.concurrency, options.prefetch)
    for round_number in range(1, options.repeat + 1):
        for broker, settings in brokers.items():
            for partitions in (1, options.partitions):
                run = drain(settings, tuning, partitions, options.jobs, work)
                run.update(round=round_number, broker=broker, partitions=partitions)
                print(json.dumps(run), flush=True)
                runs.append(run)
    return runs


def drain(
    settings: Settings, tuning: Tuning, partitions: int, jobs: int, work: Path
) -> dict[str, Any]:
    """Enqueue `jobs` on a fresh queue (partitioned when `partitions` > 1), then drain it."""
    client = PulsarjobsClient(settings)
    try:
        client.fresh_queue("scale", partitions if partitions > 1 else 0)
        enqueue = client.bulk("noop_async", jobs)
        system = next(s for s in pulsar_systems(client, tuning) if s.name == "pj_async")
        env = worker_env(settings, None, str(work))
        workers = Workers.start(system.worker_commands(PROCESSES), env, work / "worker.log")
        try:
            figures = watch_drain(workers, client.pending, jobs)
        finally:
            workers.stop()
    finally:
        client.close()
    return {"enqueue_per_s": enqueue, **figures}


def summary(
    runs: list[dict[str, Any]], options: argparse.Namespace, measured_on: dict[str, Any]
) -> dict[str, Any]:
    medians: dict[str, dict[str, float]] = {}
    for key in dict.fromkeys(variant(run) for run in runs):
        chosen = [run for run in runs if variant(run) == key]
        medians[key] = {
            figure: statistics.median(run[figure] for run in chosen)
            for figure in ("enqueue_per_s", "jobs_per_s", "cpu_s_per_1000")
        }
    # Ratios within a round (the variants ran minutes apart), then their median.
    base = {run["round"]: run for run in runs if variant(run) == "standalone, 1 partition"}
    ratios = {
        key: {
            figure: round(
                statistics.median(
                    run[figure] / base[run["round"]][figure] for run in runs if variant(run) == key
                ),
                3,
            )
            for figure in ("enqueue_per_s", "jobs_per_s", "cpu_s_per_1000")
        }
        for key in medians
    }
    return {
        "command": f"python -m bench.scale --jobs {options.jobs} --repeat {options.repeat} "
        f"--partitions {options.partitions}",
        "worker": f"pulsarjobs worker --processes {PROCESSES} --concurrency "
        f"{options.concurrency} --prefetch {options.prefetch}, no-op async jobs",
        "environment": {**measured_on, "load_average_end": list(os.getloadavg())},
        "medians": medians,
        "ratios_to_standalone_1_partition_median_of_rounds": ratios,
        "runs": runs,
    }


def variant(run: dict[str, Any]) -> str:
    partitions = run["partitions"]
    return f"{run['broker']}, {partitions} partition{'s' if partitions > 1 else ''}"


if __name__ == "__main__":
    main()
