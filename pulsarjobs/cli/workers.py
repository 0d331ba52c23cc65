"""`pulsarjobs workers [quiet|stop ID]`: running workers, by their heartbeats, and commands to
them. (`pulsarjobs worker` is the command that runs one.)"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from pulsarjobs.cli.context import inspecting
from pulsarjobs.cli.output import AsJson, fail, print_json, print_table, reports_errors
from pulsarjobs.cli.queues import age
from pulsarjobs.operations.control import Command, tell
from pulsarjobs.operations.inspector import WorkerStatus
from pulsarjobs.transport.connection import client_errors

app = typer.Typer(help="Running workers: list them, make one quiet, stop one.")
console = Console()

WorkerId = Annotated[
    str, typer.Argument(metavar="WORKER_ID", help="A worker id, or enough of its start.")
]
Wait = Annotated[
    float,
    typer.Option(min=0, help="Seconds to wait for the worker to confirm; 0: do not wait."),
]
STATE_STYLE = {"running": "green", "quiet": "yellow", "stopping": "yellow", "gone": "red"}
COLUMNS = ("worker", "state", "queues", "busy", "processed", "failed", "memory", "seen")


@app.callback(invoke_without_command=True)
@reports_errors
def list_workers(
    ctx: typer.Context,
    show_all: Annotated[
        bool, typer.Option("--all", "-a", help="Include stopped workers, and long gone ones.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Workers by their latest heartbeat; one not heard from for 3 intervals is gone."""
    if ctx.invoked_subcommand is not None:
        return
    with inspecting(ctx) as inspector:
        workers = inspector.workers(everyone=show_all)
    if as_json:
        print_json(workers)
        return
    rows = [row(worker) for worker in workers]
    caption = None if workers else "no workers running"
    print_table(console, "Workers", COLUMNS, rows, right=COLUMNS[3:], caption=caption)


@app.command()
@reports_errors
def quiet(ctx: typer.Context, worker_id: WorkerId, wait: Wait = 15.0) -> None:
    """Ask a worker to stop fetching jobs; it finishes its running ones and keeps running."""
    command_worker(ctx, worker_id, "quiet", wait)


@app.command()
@reports_errors
def stop(ctx: typer.Context, worker_id: WorkerId, wait: Wait = 15.0) -> None:
    """Ask a worker to shut down gracefully, as SIGTERM would."""
    command_worker(ctx, worker_id, "stop", wait)


def row(worker: WorkerStatus) -> tuple[str, ...]:
    style = STATE_STYLE.get(worker.state, "dim")
    return (
        worker.worker,
        f"[{style}]{worker.state}[/]",
        ",".join(worker.queues),
        f"{worker.busy}/{worker.concurrency}",
        str(worker.processed),
        str(worker.failed),
        f"{worker.rss_bytes / 2**20:.0f} MB" if worker.rss_bytes else "-",
        f"{age(worker.silent_seconds)} ago",
    )


def command_worker(ctx: typer.Context, worker_id: str, command: Command, wait: float) -> None:
    with inspecting(ctx) as inspector:
        target = pick(inspector.workers(everyone=True), worker_id)
        with client_errors(inspector.settings.service_url, f"telling {target.worker} to {command}"):
            confirmed = tell(inspector.client, inspector.settings, target.worker, command, wait)
    if not wait:
        console.print(f"Sent {command} to {target.worker}.", highlight=False)
    elif confirmed is None:
        fail(f"Sent {command} to {target.worker}, but it did not confirm within {wait:g} s.")
    else:
        console.print(f"Worker {target.worker} is {confirmed.state}.", highlight=False)


def pick(workers: list[WorkerStatus], worker_id: str) -> WorkerStatus:
    """The one worker an id (or the start of one) names, if it can still take a command."""
    exact = [worker for worker in workers if worker.worker == worker_id]
    found = exact or [worker for worker in workers if worker.worker.startswith(worker_id)]
    if not found:
        fail(f"No worker {worker_id!r}; `pulsarjobs workers` lists them.")
    if len(found) > 1:
        names = ", ".join(worker.worker for worker in found)
        fail(f"{worker_id!r} names several workers ({names}); give more of the id.")
    target = found[0]
    if target.state == "gone":
        fail(f"Worker {target.worker} is gone: not heard from for {target.silent_seconds:.0f} s.")
    if target.state == "stopped":
        fail(f"Worker {target.worker} has stopped.")
    return target
