"""`pulsarjobs flow | flow rate QUEUE N|off`: the flow control in force — rate limits, concurrency
limits, unique keys held, pending debounces — and setting a queue's rate limit."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from pulsarjobs.cli.context import inspecting
from pulsarjobs.cli.output import AsJson, print_json, print_table, reports_errors
from pulsarjobs.flow.debounce import Debounces
from pulsarjobs.flow.rates import set_rate_limit
from pulsarjobs.flow.unique import UniqueKeys
from pulsarjobs.operations.flow_report import FlowReport, flow_report, rate_limits

app = typer.Typer(help="Flow control: rate limits, concurrency limits, unique keys held.")
console = Console()


@app.callback(invoke_without_command=True)
@reports_errors
def flow(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Rate limits by queue, concurrency limits by key, and the unique keys held now."""
    if ctx.invoked_subcommand is not None:
        return
    with inspecting(ctx) as inspector:
        unique_keys, debounces = UniqueKeys(inspector.connection), Debounces(inspector.connection)
        try:
            report = flow_report(inspector.connection, unique_keys, rate_limits(inspector),
                                 inspector.workers(), debounces)  # fmt: skip
        finally:
            unique_keys.close()
            debounces.close()
    if as_json:
        print_json(report)
    else:
        show(report)


@app.command("rate")
@reports_errors
def rate(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="The queue's name.")],
    per_second: Annotated[str, typer.Argument(help="Starts a second, or 'off'.")],
) -> None:
    """At most PER_SECOND of the queue's jobs start a second, across all workers."""
    limit = None if per_second == "off" else parse_rate(per_second)
    with inspecting(ctx) as inspector:
        set_rate_limit(inspector.connection, queue, limit)
    said = "has no rate limit" if limit is None else f"starts at most {limit} jobs a second"
    console.print(f"Queue {queue} {said}.", highlight=False)


def parse_rate(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise typer.BadParameter(f"{text!r}: give a whole number >= 1, or 'off'")
    return int(text)


def show(report: FlowReport) -> None:
    limits: list[tuple[str, str, str]] = []
    for queue, per_second in sorted(report.rate_limits.items()):
        limits.append(("rate", f"queue {queue}", f"{per_second}/s"))
    for key, per_second in sorted(report.key_rate_limits.items()):
        limits.append(("rate", key, f"{per_second}/s"))
    for key, at_once in sorted(report.concurrency_limits.items()):
        limits.append(("concurrency", key, f"{at_once} at once"))
    caption = None
    if not limits:
        caption = "no limits"
    elif report.held_by_limit:
        caption = f"{report.held_by_limit} jobs wait for a concurrency slot"
    print_table(console, "Limits", ("kind", "of", "limit"), limits, caption=caption)
    held = []
    for hold in report.unique_keys:
        until = hold.expires_at.isoformat(timespec="seconds")
        held.append((hold.key, hold.job_id, hold.type, hold.queue, until))
    caption = None
    if report.unique_held > len(report.unique_keys):
        caption = f"the {len(report.unique_keys)} soonest to expire"
    title = f"Unique keys held: {report.unique_held}"
    columns = ("key", "job", "type", "queue", "until")
    print_table(console, title, columns, held, wraps={"until"}, caption=caption)
    show_debounces(report)


def show_debounces(report: FlowReport) -> None:
    windows = [(w.debounce_key, w.type, w.queue, str(w.calls),
                w.started_at.isoformat(timespec="seconds"), w.due_at.isoformat(timespec="seconds"))
               for w in report.debounce_windows]  # fmt: skip
    caption = None
    if report.debounces_open > len(windows):
        caption = f"the {len(windows)} soonest due"
    title = f"Pending debounces: {report.debounces_open}"
    columns = ("key", "type", "queue", "calls", "first call", "runs at")
    print_table(console, title, columns, windows, wraps={"first call", "runs at"}, caption=caption)


@app.command("fair")
@reports_errors
def fair(
    ctx: typer.Context,
    queues: Annotated[list[str] | None, typer.Argument(help="Fair queues (default: all).")] = None,
    as_json: AsJson = False,
) -> None:
    """The keys with jobs waiting on fair queues' lanes, the most first (docs/flow-control.md)."""
    with inspecting(ctx) as inspector:
        names = queues or inspector.queue_names()
        found = [keys for name in names if (keys := inspector.fair_keys(name)) is not None]
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("No fair queue: declare a job with fair_key= (docs/flow-control.md).")
    for keys in found:
        rows = [(key, str(count), str(keys.lane_of_key[key])) for key, count in keys.keys.items()]
        waiting = sum(keys.lanes.values())
        caption = None if keys.exact else "counted among the first jobs read of each lane"
        title = f"Queue {keys.queue}: {waiting} waiting on {len(keys.lanes)} lanes"
        print_table(console, title, ("key", "waiting", "lane"), rows, right={"waiting", "lane"},
                    caption=caption)  # fmt: skip
