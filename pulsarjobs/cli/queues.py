"""`pulsarjobs queues [--watch] | pause Q | resume Q | retention Q`: every queue's jobs, by state;
pausing and resuming a queue for every worker; how long its dead letters are kept."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console, RenderableType
from rich.live import Live

from pulsarjobs.cli.context import inspecting
from pulsarjobs.cli.output import AsJson, print_json, reports_errors, table
from pulsarjobs.operations.durations import parse_duration, parse_size
from pulsarjobs.operations.inspector import Inspector, QueueStats
from pulsarjobs.operations.pauses import pause, resume
from pulsarjobs.operations.ready_work import ReadyWork
from pulsarjobs.operations.retention import KEPT_FOREVER, dead_retention, set_dead_retention
from pulsarjobs.transport.topics import topics_for

app = typer.Typer(help="Queues: their jobs by state; pause and resume one; dead-letter retention.")
console = Console()
Queue = Annotated[str, typer.Argument(help="The queue's name.")]
T = TypeVar("T")
COLUMNS = (
    "queue",
    "waiting",
    "scheduled",
    "retrying",
    "cancelled",
    "in flight",
    "grouping",
    "dead",
    "dead kept",
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
    """Jobs waiting, scheduled, retrying, cancelled, in flight and dead, per queue, with rates
    and workers; and the transactional outbox's lag, while a relay runs. Counts are exact: each
    queue's backlog is read through (about 20,000 jobs a second; --watch then reads only what
    came since)."""
    if ctx.invoked_subcommand is not None:
        return
    if watch and as_json:
        raise typer.BadParameter("--watch shows a table; leave out --json", param_hint="--watch")
    with inspecting(ctx) as inspector:
        counts = ReadyWork(inspector, read_budget=math.inf)
        if as_json:
            print_json(counts.exact(inspector.queues()))
        elif watch:
            watch_queues(inspector, counts, interval)
        else:
            console.print(queue_table(inspector, counts))


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


@app.command("retention")
@reports_errors
def retention(
    ctx: typer.Context,
    queue: Queue,
    dead_for: Annotated[
        str | None,
        typer.Option(
            help="Remove dead letters that died this long ago: 30d, 12h, 1w.", show_default=False
        ),
    ] = None,
    dead_max_size: Annotated[
        str | None,
        typer.Option(
            help="Remove the oldest dead letters past this size: 500M, 1G.", show_default=False
        ),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Keep the dead letters for ever again.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """How long and how much of the queue's dead letters are kept; with options, set it (an
    option left out keeps its setting). Without any, they are kept for ever."""
    if clear and (dead_for or dead_max_size):
        raise typer.BadParameter("removes both limits: leave out the others", param_hint="--clear")
    max_age = parse_option(parse_duration, dead_for, "--dead-for")
    max_size = parse_option(parse_size, dead_max_size, "--dead-max-size")
    with inspecting(ctx) as inspector:
        topics = topics_for(inspector.settings, queue)
        if clear or max_age or max_size:
            own = KEPT_FOREVER if clear else dead_retention(inspector.admin, topics, applied=False)
            set_dead_retention(
                inspector.connection, queue, max_age or own.max_age, max_size or own.max_size
            )
        kept = dead_retention(inspector.admin, topics)
        own = dead_retention(inspector.admin, topics, applied=False)
    if as_json:
        print_json(kept)
        return
    console.print(kept.sentence(queue), highlight=False)
    if kept != own:  # a namespace policy (its message TTL) applies where the queue sets none
        ours = f"sets {own}" if own != KEPT_FOREVER else "sets no limit"
        console.print(f"{queue} itself {ours}; the namespace's policies set the rest.")


def parse_option(parse: Callable[[str], T], text: str | None, option: str) -> T | None:
    """An option's value, or a usage error (exit 2) that says how to write it."""
    try:
        return parse(text) if text is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def watch_queues(inspector: Inspector, counts: ReadyWork, interval: float) -> None:
    with Live(queue_table(inspector, counts), console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(queue_table(inspector, counts), refresh=True)
        except KeyboardInterrupt:
            pass


def queue_table(inspector: Inspector, counts: ReadyWork) -> RenderableType:
    settings = inspector.settings
    title = f"Queues of {settings.full_namespace}, subscription {settings.subscription}"
    rows = [row(queue) for queue in counts.exact(inspector.queues())]
    captions = [] if rows else ["no queues yet: they appear with their first job"]
    if (outbox := inspector.outbox()) is not None:  # its relays' heartbeats tell its lag
        captions.append(outbox.sentence())
    caption = "\n".join(captions) or None
    return table(console, title, COLUMNS, rows, right=COLUMNS[1:], caption=caption)


def row(queue: QueueStats) -> tuple[str, ...]:
    return (
        f"{queue.queue} [yellow](paused)[/]" if queue.paused else queue.queue,
        str(queue.waiting),
        str(queue.scheduled),
        str(queue.retrying),
        str(queue.cancelled),
        str(queue.in_flight),
        str(queue.grouping),  # grouped jobs' members: "N in M" groups
        f"[red]{queue.dead}[/]" if queue.dead else "0",
        str(queue.dead_retention),
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
