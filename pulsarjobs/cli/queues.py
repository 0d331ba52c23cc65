"""`pulsarjobs queues [--watch] | pause Q | resume Q`: every queue's jobs, by state; pausing and
resuming a queue for every worker."""

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
from pulsarjobs.pauses import pause, resume

app = typer.Typer(help="Queues: their jobs by state; pause and resume one.")
console = Console()
Queue = Annotated[str, typer.Argument(help="The queue's name.")]
COLUMNS = (
    "queue",
    "waiting",
    "scheduled",
    "in flight",
    "dead",
    "in/s",
    "out/s",
    "limit/s",
    "workers",
    "oldest",
)


@app.callback(invoke_without_command=True)
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
    if ctx.invoked_subcommand is not None:
        return
    if watch and as_json:
        raise typer.BadParameter("--watch shows a table; leave out --json", param_hint="--watch")
    with inspecting(ctx) as inspector:
        if as_json:
            print_json(inspector.queues())
        elif watch:
            watch_queues(inspector, interval)
        else:
            console.print(queue_table(inspector))


@app.command("pause")
@reports_errors
def pause_queue(ctx: typer.Context, queue: Queue) -> None:
    """Stop every worker taking the queue's jobs; they stay stored until it is resumed."""
    with inspecting(ctx) as inspector:
        pause(inspector.connection, queue)
    console.print(f"Queue {queue} is paused: workers take none of its jobs.", highlight=False)


@app.command("resume")
@reports_errors
def resume_queue(ctx: typer.Context, queue: Queue) -> None:
    """Let workers take the queue's jobs again."""
    with inspecting(ctx) as inspector:
        resume(inspector.connection, queue)
    console.print(f"Queue {queue} is resumed.", highlight=False)


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
        f"{queue.queue} [yellow](paused)[/]" if queue.paused else queue.queue,
        str(queue.waiting),
        scheduled,
        str(queue.in_flight),
        f"[red]{queue.dead}[/]" if queue.dead else "0",
        f"{queue.rate_in:.1f}",
        f"{queue.rate_out:.1f}",
        str(queue.rate_limit or "-"),
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
