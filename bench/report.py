"""A Markdown table and a plot from the benchmark's JSON.

python -m bench.report [bench/results/latest.json] [--plot docs/benchmarks.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.workers import ROOT

PROCESSES = ("1", "2")
PERCENTILES = (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9"))


def say(line: str) -> None:
    """A progress line, on stderr: stdout carries the figures."""
    print(line, file=sys.stderr, flush=True)


def rounded(found: dict[str, Any]) -> dict[str, Any]:
    """Figures for the console: every float to 3 decimals."""
    parsed: dict[str, Any] = json.loads(json.dumps(found), parse_float=lambda t: round(float(t), 3))
    return parsed


def save(results: dict[str, Any], out: Path) -> None:
    """Write the results as JSON, whole: renamed into place, never read half-written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(results, indent=2) + "\n")
    temporary.replace(out)


def table(results: dict[str, Any]) -> str:
    sections = [
        drain_table(results),
        enqueue_table(results),
        latency_table(results),
        scheduled_table(results),
        ratio_lines(results),
    ]
    return "\n\n".join(section for section in sections if section)


def drain_table(results: dict[str, Any]) -> str:
    drain = results.get("drain", {})
    tables = []
    for processes in PROCESSES:
        if processes not in drain:
            continue
        lines = [
            f"| drain, {processes} worker process{'es' if processes != '1' else ''} | jobs/s "
            "| worker CPU s / 1,000 jobs | broker (Pulsar, Redis) CPU s / 1,000 jobs "
            "| peak RSS MB |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, label in results["systems"].items():
            median = drain[processes].get(name, {}).get("median")
            if median:
                server = median.get("server_cpu_s_per_1000")
                lines.append(
                    f"| {label} | {median['jobs_per_s']:,.0f} | {median['cpu_s_per_1000']:.3f} "
                    f"| {'-' if server is None else f'{server:.3f}'} "
                    f"| {median['peak_rss_mb']:.0f} |"
                )
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def enqueue_table(results: dict[str, Any]) -> str:
    enqueue = results.get("enqueue", {})
    if not enqueue:
        return ""
    lines = ["| enqueue | one by one, awaited (jobs/s) | bulk (jobs/s) |", "|---|---:|---:|"]
    for library, kinds in enqueue.items():
        cells = [number(kinds.get(kind, {}).get("median")) for kind in ("single", "bulk")]
        lines.append(f"| {library} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def latency_table(results: dict[str, Any]) -> str:
    latency = results.get("latency")
    if not latency:
        return ""
    lines = [
        "| enqueue → start | load | offered jobs/s | p50 ms | p99 ms | p99.9 ms | max ms "
        "| last start after last send, s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, label in results["systems"].items():
        for load in latency["rates"]:
            median = latency.get(load, {}).get(name, {}).get("median")
            if not median:
                continue
            lines.append(
                f"| {label} | {load} | {median['sent_per_s']:,.0f} | {median['p50_ms']:,.1f} "
                f"| {median['p99_ms']:,.1f} | {median['p999_ms']:,.1f} | {median['max_ms']:,.1f} "
                f"| {median['tail_s']:.1f}{incomplete(median)} |"
            )
    return "\n".join(lines)


def incomplete(median: dict[str, float]) -> str:
    """Jobs still unstarted when the run gave up waiting."""
    missing = median["sent"] - median["handled"]
    return f" ({missing:,.0f} never started)" if missing > 0 else ""


def scheduled_table(results: dict[str, Any]) -> str:
    scheduled = results.get("scheduled", {}).get("median")
    if not scheduled:
        return ""
    options = results["options"]
    return "\n".join(
        [
            f"| scheduled: {options['scheduled']:,} jobs over {options['schedule_seconds']:.0f} s "
            "| p50 ms | p99 ms | max ms | started early |",
            "|---|---:|---:|---:|---:|",
            f"| lateness (start - run_at) | {scheduled['p50_ms']:.1f} | {scheduled['p99_ms']:.1f} "
            f"| {scheduled['max_ms']:.1f} | {scheduled['early']:.0f} |",
        ]
    )


def ratio_lines(results: dict[str, Any]) -> str:
    found = {k: v for k, v in results.get("ratios", {}).items() if k != "paired"}
    paired = results.get("ratios", {}).get("paired", {})
    return "\n".join(
        f"- `{name}`: {value:.2f} (median of the per-repeat ratios: {paired.get(name, 0):.2f})"
        for name, value in found.items()
    )


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def plot(results: dict[str, Any], path: Path) -> bool:
    """Drain throughput and latency percentiles per system; False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no plot (pip install -e '.[bench]')", file=sys.stderr)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loads = list(results.get("latency", {}).get("rates", {}))
    rows = (2 + len(loads)) // 2
    figure, grid = plt.subplots(rows, 2, figsize=(12, 4.8 * rows), squeeze=False)
    axes = list(grid.flat)
    plot_drain(axes[0], results)
    for axis, load in zip(axes[1:], loads, strict=False):
        plot_latency(axis, results, load)
    for axis in axes[1 + len(loads) :]:
        axis.set_visible(False)
    figure.suptitle(caption(results), fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def plot_drain(axis: Any, results: dict[str, Any]) -> None:
    names = list(results["systems"])
    width = 0.38
    for offset, processes in enumerate(PROCESSES):
        by_system = results.get("drain", {}).get(processes, {})
        medians, low, high = [], [], []
        for name in names:
            rates = [run["jobs_per_s"] for run in by_system.get(name, {}).get("runs", [])]
            median = by_system.get(name, {}).get("median", {}).get("jobs_per_s", 0.0)
            medians.append(median)
            low.append(median - min(rates, default=median))
            high.append(max(rates, default=median) - median)
        positions = [i + (offset - 0.5) * width for i in range(len(names))]
        axis.bar(
            positions,
            medians,
            width,
            yerr=[low, high],
            capsize=3,
            label=f"{processes} process{'es' if processes != '1' else ''}",
        )
    label_systems(axis, results, names)
    axis.set_ylabel("jobs/s (median; bars: min-max)")
    axis.set_title("Drain throughput, no-op jobs")
    axis.legend(fontsize=8)


def label_systems(axis: Any, results: dict[str, Any], names: list[str]) -> None:
    labels = [results["systems"][name] for name in names]
    axis.set_xticks(range(len(names)), labels, rotation=25, ha="right", fontsize=8)


def plot_latency(axis: Any, results: dict[str, Any], load: str) -> None:
    latency = results["latency"]
    names = [name for name in results["systems"] if name in latency.get(load, {})]
    width = 0.8 / len(PERCENTILES)
    for offset, (key, label) in enumerate(PERCENTILES):
        values = [latency[load][name]["median"][key] for name in names]
        positions = [i + (offset - 1) * width for i in range(len(names))]
        axis.bar(positions, values, width, label=label)
    axis.set_yscale("log")
    label_systems(axis, results, names)
    axis.set_ylabel("enqueue → start, ms (log)")
    axis.set_title(f"Latency at {latency['rates'][load]:,.0f} jobs/s ({load} of pulsarjobs' drain)")
    axis.legend(fontsize=8)


def caption(results: dict[str, Any]) -> str:
    env, options = results["environment"], results["options"]
    return (
        f"{env['cpu_count']} CPUs, Python {env['python']}, Pulsar {env['pulsar']}, "
        f"Redis {env['redis_server']}; {options['jobs']:,} jobs per drain, "
        f"median of {options['repeat']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("json", type=Path, nargs="?", default=ROOT / "bench/results/latest.json")
    parser.add_argument("--plot", type=Path, default=None, help="also draw the plot here")
    options = parser.parse_args()
    results = json.loads(options.json.read_text())
    print(table(results))
    if options.plot:
        plot(results, options.plot)


if __name__ == "__main__":
    main()
