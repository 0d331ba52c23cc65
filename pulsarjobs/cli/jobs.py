"""`pulsarjobs jobs cancel ID` and `pulsarjobs jobs result ID`: one job, by its id."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from pulsarjobs.app import App
from pulsarjobs.cancels import cancel
from pulsarjobs.cli.context import inspecting, settings_of
from pulsarjobs.cli.output import fail, print_json, reports_errors
from pulsarjobs.errors import JobFailed

app = typer.Typer(no_args_is_help=True, help="Jobs by id: cancel one, show one's result.")
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


@app.command("result")
@reports_errors
def show_result(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="The id enqueue returned.")],
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="Seconds to wait for the job to settle.")
    ] = 0.0,
) -> None:
    """Print a job's return value as JSON (bytes in base64), for jobs that keep their result.

    A job that failed for good prints its error and remote traceback and exits 1; so does one
    with no result (yet, or any more) after --wait seconds.
    """
    with App(settings_of(ctx)) as results:
        try:
            value = results.result(job_id, timeout=wait)
        except JobFailed as failed:
            fail(f"{failed}\n{failed.remote_traceback}".rstrip())
    print_json(value)
