"""What durability against a power cut costs: enqueue rates with and without journal sync.

    python -m bench.durability                        # 2,000 jobs a run, 3 rounds
    python -m bench.durability --jobs 500 --repeat 1  # a look

It starts two local brokers side by side, the launcher's default (a write is acknowledged once
the bookie's journal has it in the page cache) and one started like `pulsarjobs broker start
--journal-sync` (fsync'ed first), and measures on both, interleaved round by round so that a
noisy machine hits them alike, the rate of enqueues one by one and in groups of 1,000. It
prints the medians and the ratios synced / default, and saves them as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.broker import benchmark_broker
from bench.environment import environment
from bench.systems import PulsarjobsClient
from bench.workers import ROOT
from pulsarjobs.logs import configure_logging

JOB = "noop_async"  # enqueued only: no worker runs here
BROKERS = ("default", "journal_sync")
KINDS = ("single", "bulk")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2_000, help="jobs per enqueue run")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "durability.json")
    options = parser.parse_args(argv)
    configure_logging("console", "warning")
    rates: dict[str, dict[str, list[float]]] = {b: {k: [] for k in KINDS} for b in BROKERS}
    with ExitStack() as stack:
        clients = {}
        for name in BROKERS:
            broker = stack.enter_context(benchmark_broker(journal_sync=name == "journal_sync"))
            clients[name] = PulsarjobsClient(broker.settings)
            stack.callback(clients[name].close)
        for round_ in range(options.repeat):
            order = BROKERS if round_ % 2 == 0 else BROKERS[::-1]
            for name in order:
                client = clients[name]
                client.fresh_queue("single")
                rates[name]["single"].append(client.single(JOB, options.jobs))
                client.fresh_queue("bulk")
                rates[name]["bulk"].append(client.bulk(JOB, options.jobs * 10))
                say(f"round {round_ + 1} {name:12} one by one {rates[name]['single'][-1]:8,.0f}/s"
                    f"  in groups {rates[name]['bulk'][-1]:9,.0f}/s")  # fmt: skip
        measured_on = environment(clients["default"].settings, None)
    results = summarise(rates)
    results["options"] = {"jobs": options.jobs, "repeat": options.repeat}
    results["environment"] = measured_on
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(results, indent=2) + "\n")
    for kind in KINDS:
        default, synced = (results["medians"][name][kind] for name in BROKERS)
        say(f"{kind:6}: default {default:9,.0f}/s, journal sync {synced:9,.0f}/s, "
            f"ratio {results['ratios'][kind]:.2f}")  # fmt: skip


def summarise(rates: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Every run, the medians, and per kind the median of the per-round ratios synced/default
    (each round's two figures were measured back to back)."""
    medians = {b: {k: statistics.median(rates[b][k]) for k in KINDS} for b in BROKERS}
    ratios = {}
    for kind in KINDS:
        pairs = zip(rates["journal_sync"][kind], rates["default"][kind], strict=True)
        ratios[kind] = statistics.median(synced / default for synced, default in pairs)
    return {"runs": rates, "medians": medians, "ratios": ratios}


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
