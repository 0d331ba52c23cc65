"""`pulsarjobs jobs show|cancel|result ID`: one job, by its id; `jobs cancel-matching NAME=VALUE`:
every job that carries those keys."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from pulsarjobs.app import App
from pulsarjobs.cli.context import inspecting, settings_of
from pulsarjobs.cli.output import AsJson, fail, print_json, print_table, reports_errors
from pulsarjobs.cli.queues import age
from pulsarjobs.clock import utc_now
from pulsarjobs.errors import JobFailed
from pulsarjobs.operations.cancel_matching import JobKeys, cancel_matching, check_keys
from pulsarjobs.operations.cancels import cancel
from pulsarjobs.operations.durable_steps import DurableStep, asleep_until, took_text
from pulsarjobs.operations.job_lookup import FoundJob, find_job, where_said
from pulsarjobs.operations.jsonable import jsonable
from pulsarjobs.transport.backlog import position_text
from pulsarjobs.wire.heartbeat import RunningJob
from pulsarjobs.worker.progress import last_progress

app = typer.Typer(
    no_args_is_help=True,
    help="Jobs by id: show where one runs, how far it got and its durable steps, cancel one, "
    "show one's result.",
)
console = Console()
JobId = Annotated[str, typer.Argument(metavar="JOB_ID", help="The id enqueue returned.")]


@app.command("show")
@reports_errors
def show_job(ctx: typer.Context, job_id: JobId, as_json: AsJson = False) -> None:
    """Where a job is, found by its id in any state: waiting, scheduled, retrying or dead on
    its queue (the job index says where), running on a worker and how far it got (a job that
    ended is shown for a while after, with the last progress it reported), or over with a kept
    result. A durable job's stored steps and sleeps are listed too."""
    with inspecting(ctx) as inspector:
        found = last_progress(inspector.workers(everyone=True), job_id)
        located = find_job(inspector, job_id, found)
        steps = inspector.steps(job_id)
    if located is None and not steps:
        fail(f"No job {job_id} is stored: no worker runs it, nor ended it lately, the job index "
             "has no entry of it and no result of it is kept (a job that settled without "
             "keeping its result is forgotten; docs/dashboard.md#find-a-job).")  # fmt: skip
    if as_json:
        seen = {"worker": None, **dict.fromkeys(RUNNING_FIELDS), "job_id": job_id}
        if found is not None:
            seen = {"worker": found[0].worker, **found[1].to_fields()}
        print_json({**seen, **located_fields(located), "steps": steps,
                    "asleep_until": asleep_until(steps)})  # fmt: skip
        return
    now = utc_now()
    lines = [f"Job {job_id}: no worker runs it now, nor ended it lately"]
    if located is not None:
        lines = [f"Job {job_id}: {located.type or 'of unknown type'} on {located.queue or '-'}",
                 located_text(located, now)]  # fmt: skip
    if found is not None:
        worker, job = found
        if job.ended_at is None:
            state = f"running on {worker.worker} for {age((now - job.started_at).total_seconds())}"
        else:
            state = f"ended on {worker.worker} {age((now - job.ended_at).total_seconds())} ago"
        lines += [state, f"progress: {job.progress or 'none reported'}"]
    if (wakes_at := asleep_until(steps)) is not None:
        lines.append(f"asleep until {moment(wakes_at)} ({relative(wakes_at, now)})")
    console.print("\n".join(lines), highlight=False, soft_wrap=True)
    if steps:
        running = found is not None and found[1].ended_at is None
        caption = "running now, past the last step stored" if running else None
        rows = [step_row(step, now) for step in steps]
        title = f"Steps of job {job_id}, as stored"
        print_table(console, title, STEP_COLUMNS, rows, wraps={"stored", "value"},
                    right={"took"}, caption=caption)  # fmt: skip


def located_fields(located: FoundJob | None) -> dict[str, object]:
    """Where `jobs show --json` says the job is."""
    if located is None:
        return {"state": None, "where": None, "position": None, "due_at": None, "result": None}
    entry, result = located.entry, located.result
    kept = result and {"value": result.value, "error": result.error, "expires": result.expires_at}
    return {
        "state": located.state,
        "queue": located.queue,
        "type": located.type,
        "where": entry.where if entry else None,
        "position": position_text(entry.position) if entry else None,
        "due_at": located.due_at,
        "result": kept,
    }


def located_text(located: FoundJob, now: datetime) -> str:
    """The state line of `jobs show`."""
    said = f"{located.state}: {where_said(located)}"
    if located.due_at is not None and located.state in ("waiting", "scheduled", "retrying"):
        said += f", due {relative(located.due_at, now)}"
    result = located.result
    if result is not None and located.state in ("finished", "failed"):
        expires = relative(result.expires_at, now)
        said += f", settled {relative(result.settled_at, now)}; its result expires {expires}"
        if result.error is not None:
            said += f" ({result.error.type}: {result.error.message})"
    return said


RUNNING_FIELDS = tuple(field.name for field in fields(RunningJob))
STEP_COLUMNS = ("step", "state", "stored", "took", "value")


def step_row(step: DurableStep, now: datetime) -> tuple[str, ...]:
    """A stored step as `jobs show` lists it: a sleep's value is when it wakes."""
    if step.wakes_at is not None:
        value = f"until {moment(step.wakes_at)} ({relative(step.wakes_at, now)})"
    else:
        value = json.dumps(jsonable(step.value), ensure_ascii=False)
    return (escape(step.name), step.state, moment(step.stored_at), took_text(step), escape(value))


def moment(at: datetime) -> str:
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def relative(at: datetime, now: datetime) -> str:
    seconds = (at - now).total_seconds()
    return f"in {age(seconds)}" if seconds > 0 else f"{age(-seconds)} ago"


@app.command("cancel-matching")
@reports_errors
def cancel_matching_jobs(
    ctx: typer.Context,
    keys: Annotated[
        list[str],
        typer.Argument(
            metavar="NAME=VALUE...",
            help=f"Keys the jobs carry, all of them: {', '.join(JobKeys.__annotations__)}.",
        ),
    ],
    queue: Annotated[str | None, typer.Option(help="Only this queue's jobs.")] = None,
) -> None:
    """Cancel every waiting, scheduled or retrying job that carries these keys, e.g.
    `unique_key=user:42` or `type=sync_user order_key=account:7`, and say how many."""
    pairs = [key.partition("=") for key in keys]
    if bad := [key for key, (_, equals, _) in zip(keys, pairs, strict=True) if not equals]:
        raise typer.BadParameter(f"{bad[0]!r}: give NAME=VALUE", param_hint="NAME=VALUE")
    matching = {name: value for name, _, value in pairs}
    try:
        check_keys(matching)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="NAME=VALUE") from None
    with inspecting(ctx) as inspector:
        count = cancel_matching(inspector, matching, None if queue is None else [queue])
    where = f"queue {queue}" if queue else "every queue"
    console.print(f"Cancelled {count} jobs carrying {' '.join(keys)} in {where}.", highlight=False)


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
