"""`pulsarjobs jobs cancel ID`: one job, by its id."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from pulsarjobs.cancels import cancel
from pulsarjobs.cli.context import inspecting
from pulsarjobs.cli.output import reports_errors

app = typer.Typer(no_args_is_help=True, help="Jobs by id: cancel one.")
console = Console()


@app.command("cancel")
@reports_errors
def cancel_job(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="The id enqueue returned.")],
) -> None:
    """Cancel a job: it does not start, or stops, and is not retried.

    A job no worker has taken yet never starts; a running async job is stopped; a running sync
    job runs on, and its result is discarded.
    """
    if not job_id.strip():
        raise typer.BadParameter("give the id of the job to cancel", param_hint="JOB_ID")
    with inspecting(ctx) as inspector:
        cancel(inspector.connection, job_id)
    console.print(f"Job {job_id} is cancelled.", highlight=False)
