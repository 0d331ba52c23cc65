"""`pulsarjobs batches [show ID]`: batches and their progress, as the workers last stored it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from pulsarjobs.cli.context import inspecting
from pulsarjobs.cli.output import AsJson, fail, print_json, print_table, reports_errors
from pulsarjobs.workflows.batch_state import BatchProgress

app = typer.Typer(help="Batches of jobs: their progress and callbacks.")
console = Console()

STAGE_STYLE = {"open": "yellow", "running": "cyan", "complete": "green"}
COLUMNS = ("batch", "description", "stage", "total", "pending", "succeeded", "dead", "fired")


@app.callback(invoke_without_command=True)
@reports_errors
def list_batches(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Every batch, the newest first."""
    if ctx.invoked_subcommand is not None:
        return
    with inspecting(ctx) as inspector:
        batches = inspector.batches()
    if as_json:
        print_json([batch.as_dict() for batch in batches])
        return
    rows = [row(batch) for batch in batches]
    caption = None if batches else "no batches"
    wraps, right = {"description"}, COLUMNS[3:7]
    print_table(console, "Batches", COLUMNS, rows, wraps=wraps, right=right, caption=caption)


@app.command("list")
@reports_errors
def list_command(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Every batch, the newest first (as `pulsarjobs batches`)."""
    list_batches(ctx, as_json)


@app.command()
@reports_errors
def show(
    ctx: typer.Context,
    batch_id: Annotated[str, typer.Argument(metavar="BATCH_ID", help="The batch's id.")],
    as_json: AsJson = False,
) -> None:
    """One batch: its progress, its parent, the callbacks enqueued."""
    with inspecting(ctx) as inspector:
        batch = inspector.batch(batch_id)
    if batch is None:
        fail(f"no batch {batch_id!r} in this namespace (a worker records a batch once it runs)")
    if as_json:
        print_json(batch.as_dict())
        return
    for name, value in batch.as_dict().items():
        shown = ", ".join(value) if isinstance(value, list) else value
        console.print(f"[bold]{name:>11}[/] {'-' if shown in (None, '') else shown}")


def row(batch: BatchProgress) -> list[str]:
    style = STAGE_STYLE[batch.stage]
    counts = (batch.total, batch.pending, batch.succeeded, batch.dead)
    fired = ", ".join(batch.fired) or "-"
    return [batch.id, batch.description, f"[{style}]{batch.stage}[/]", *map(str, counts), fired]
