"""`pulsarjobs queues [--watch]`: every queue's jobs, by state."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from pulsarjobs.cli.context import inspecting
from pulsarjobs.cli.output import AsJson, print_json, reports_errors
from pulsarjobs.inspect import Inspector, QueueStats

console = Console()
COLUMNS = (
    "queue",
    "waiting",
    "scheduled",
    "in flight",
    "dead",
    "in/s",
    "out/s",
    "workers",
    "oldest",
)


@reports_errors
def queues(
    ctx: typer.Context,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[
        float, typer.Option(min=0.5, help="Seconds between refreshes with --watch.")
    ] = 2.0,
    as_json: AsJson = False,
) -> None:
    """Jobs waiting, scheduled, in flight and dead, per queue, with rates and workers."""
    if watch and as_json:
        raise typer.BadParameter("--watch shows a table; leave out --json", param_hint="--watch")
    with inspecting(ctx) as inspector:
        if as_json:
            print_json(inspector.queues())
        elif watch:
            watch_queues(inspector, interval)
        else:
            console.print(queue_table(inspector))


def watch_queues(inspector: Inspector, interval: float) -> None:
    with Live(queue_table(inspector), console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(queue_table(inspector), refresh=True)
        except KeyboardInterrupt:
            pass


def queue_table(inspector: Inspector) -> Table:
    settings = inspector.settings
    title = f"Queues of {settings.full_namespace}, subscription {settings.subscription}"
    table = Table(title=title)
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "queue" else "right")
    for queue in inspector.queues():
        table.add_row(*row(queue))
    if not table.row_count:
        table.caption = "no queues yet: they appear with their first job"
    return table


def row(queue: QueueStats) -> tuple[str, ...]:
    scheduled = f"{queue.scheduled}" if queue.exact else f"≥{queue.scheduled}"
    return (
        queue.queue,
        str(queue.waiting),
        scheduled,
        str(queue.in_flight),
        f"[red]{queue.dead}[/]" if queue.dead else "0",
        f"{queue.rate_in:.1f}",
        f"{queue.rate_out:.1f}",
        str(queue.consumers),
        age(queue.oldest_seconds),
    )


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"
