"""`pulsarjobs enqueue TYPE`: enqueue a job by name, from a shell or a script."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console

from pulsarjobs.app import App
from pulsarjobs.cli.context import setting_overrides, settings_of
from pulsarjobs.cli.output import AsJson, fail, print_json, reports_errors
from pulsarjobs.jobs import JobCall
from pulsarjobs.loading import load_app
from pulsarjobs.middleware import Hooks
from pulsarjobs.operations.durations import parse_duration, parse_instant
from pulsarjobs.transport.client_log import silent_logger
from pulsarjobs.transport.connection import Connection, probe

console = Console()


@reports_errors
def enqueue(
    ctx: typer.Context,
    job_type: Annotated[str, typer.Argument(metavar="TYPE", help="The job's name.")],
    args: Annotated[str, typer.Option("--args", help="Positional arguments, a JSON list.")] = "[]",
    kwargs: Annotated[
        str, typer.Option("--kwargs", help="Keyword arguments, a JSON object.")
    ] = "{}",
    queue: Annotated[
        str | None,
        typer.Option(
            "--queue", "-q", help="The queue to put it on. [default: its declared one, or default]"
        ),
    ] = None,
    app_reference: Annotated[
        str | None,
        typer.Option(
            "--app",
            help="module:attribute of your App: the type, its arguments and options are checked "
            "against the job it declares before anything is stored.",
        ),
    ] = None,
    in_: Annotated[
        str | None, typer.Option("--in", help="Run it in a while: 30s, 5m, 2h, 1d.")
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="Run it at an ISO time (local time without an offset).")
    ] = None,
    unique_key: Annotated[
        str | None, typer.Option(help="No new job while one holds this key (held up to a day).")
    ] = None,
    order_key: Annotated[
        str | None, typer.Option(help="Run after the jobs enqueued before with this key.")
    ] = None,
    fair_key: Annotated[
        str | None,
        typer.Option(help="Take turns with other keys' jobs of its fair queue (needs --app)."),
    ] = None,
    fair_weight: Annotated[
        int | None, typer.Option(help="Jobs its lane starts in one turn (1-1000; default 1).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Enqueue one job; prints its id once the broker has stored it (with --unique-key, the id
    of the job that holds the key, if one does). Without --app, the job type is not checked."""
    call = JobCall(
        job_type,
        args=tuple(parse_json(args, list, "--args")),
        kwargs=parse_json(kwargs, dict, "--kwargs"),
        queue=queue,
        unique_key=unique_key,
        order_key=order_key,
        fair_key=fair_key,
        fair_weight=fair_weight,
    )
    delay, due = when(in_, at)
    app = load_app(app_reference, setting_overrides(ctx)) if app_reference else None
    if app is not None and job_type not in app.jobs:
        declared = ", ".join(sorted(app.jobs)) or "none"
        fail(f"no job {job_type!r} is declared in {app_reference} (declared: {declared})")
    settings = app.settings if app is not None else settings_of(ctx)
    probe(settings.service_url)
    with app or App(settings) as enqueuing:
        if app is None:
            enqueuing.hooks = Hooks()  # no middleware: this command does not know your app
        enqueuing.connection = Connection(settings, client_logger=silent_logger())
        # What will be sent, for the report; with the app, its arguments are checked here.
        envelope = enqueuing.envelope(call, in_=delay, at=due)
        job_id = enqueuing.enqueue(call.with_options(job_id=envelope.id), in_=delay, at=due)
    run_at, duplicate = envelope.run_at, job_id != envelope.id
    if as_json:
        found = {"id": job_id, "type": job_type, "queue": envelope.queue, "run_at": run_at}
        print_json({**found, "duplicate": duplicate, "checked": app is not None})
        return
    if duplicate:
        console.print(f"Not enqueued: job {job_id} holds key {unique_key!r}.", highlight=False)
        return
    timing = f"due {run_at.astimezone().isoformat(timespec='seconds')}" if run_at else "due now"
    said = f"Enqueued {job_type} {job_id} on {envelope.queue}, {timing}."
    if app is None:
        said += " Its type and arguments were not checked: give --app module:app to check them."
    console.print(said, highlight=False, soft_wrap=True)


def parse_json(text: str, kind: type, option: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint=option) from None
    if not isinstance(value, kind):
        expected = "a list, e.g. '[1, \"a\"]'" if kind is list else "an object, e.g. '{\"a\": 1}'"
        raise typer.BadParameter(f"must be {expected}", param_hint=option)
    return value


def when(in_: str | None, at: str | None) -> tuple[timedelta | None, datetime | None]:
    if in_ is not None and at is not None:
        raise typer.BadParameter("give --in or --at, not both", param_hint="--in")
    try:
        return (parse_duration(in_) if in_ else None, parse_instant(at) if at else None)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--in" if in_ else "--at") from None
