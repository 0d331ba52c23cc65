"""`pulsarjobs jobs show|cancel|result ID`: one job, by its id."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from pulsarjobs.app import App
from pulsarjobs.cli.context import inspecting, settings_of
from pulsarjobs.cli.output import AsJson, fail, print_json, reports_errors
from pulsarjobs.cli.queues import age
from pulsarjobs.clock import utc_now
from pulsarjobs.errors import JobFailed
from pulsarjobs.operations.cancels import cancel
from pulsarjobs.wire.heartbeat import PROGRESS_KEPT_AFTER
from pulsarjobs.worker.progress import last_progress

app = typer.Typer(
    no_args_is_help=True,
    help="Jobs by id: show where one runs and how far, cancel one, show one's result.",
)
console = Console()
JobId = Annotated[str, typer.Argument(metavar="JOB_ID", help="The id enqueue returned.")]


@app.command("show")
@reports_errors
def show_job(ctx: typer.Context, job_id: JobId, as_json: AsJson = False) -> None:
    """Where a job runs and how far it got, by the workers' heartbeats; a job that ended is
    shown for a while after, with the last progress it reported."""
    with inspecting(ctx) as inspector:
        found = last_progress(inspector.workers(everyone=True), job_id)
    if found is None:
        minutes = PROGRESS_KEPT_AFTER.total_seconds() / 60
        fail(f"No worker runs job {job_id} now, nor ended it in the last {minutes:g} minutes "
             "having reported its progress (the dashboard and `pulsarjobs dlq` list the jobs "
             "that wait and the dead).")  # fmt: skip
    worker, job = found
    if as_json:
        print_json({"worker": worker.worker, **job.to_fields()})
        return
    now = utc_now()
    if job.ended_at is None:
        state = f"running on {worker.worker} for {age((now - job.started_at).total_seconds())}"
    else:
        state = f"ended on {worker.worker} {age((now - job.ended_at).total_seconds())} ago"
    lines = (f"Job {job.job_id}: {job.type} on {job.queue}", state,
             f"progress: {job.progress or 'none reported'}")  # fmt: skip
    console.print("\n".join(lines), highlight=False, soft_wrap=True)


@app.command("cancel")
@reports_errors
def cancel_job(
    ctx: typer.Context,
    job_id: JobId,
) -> None:
    """Cancel a job: it does not start, or stops, and is not retried.

    A job no worker has taken yet never starts; a running async job is stopped; a running sync
    job runs on, and its result is discarded.
    """
    if not job_id.strip():
        raise typer.BadParameter("give the id of the job to cancel", param_hint="JOB_ID")
    with inspecting(ctx) as inspector:
        # Who runs it, asked first: a worker that hears of the cancel says at once it stopped.
        running = [worker for worker in inspector.workers()
                   if any(job.job_id == job_id for job in worker.running)]  # fmt: skip
        cancel(inspector.connection, job_id)
    if running:
        said = (f"Job {job_id} is cancelled: it was running on {running[0].worker} (an async "
                "run stops, a sync run's result is discarded).")  # fmt: skip
    else:  # job ids are not indexed: a waiting job cannot be told from an id never enqueued
        said = (f"Job {job_id}: cancel stored; no worker runs it now. A job with this id "
                "enqueued until now will not run wherever it waits (due, scheduled or "
                "retrying); pulsarjobs cannot tell whether a job with this id exists.")  # fmt: skip
    console.print(said, highlight=False, soft_wrap=True)


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
