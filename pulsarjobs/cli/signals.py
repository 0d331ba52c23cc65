"""`pulsarjobs signal KEY`: resume the durable jobs waiting on a key (`ctx.wait_for`); and
`pulsarjobs waiting`: which jobs wait, on which keys."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from pulsarjobs.app import App
from pulsarjobs.cli.context import inspecting, settings_of
from pulsarjobs.cli.output import AsJson, print_json, print_table, reports_errors
from pulsarjobs.cli.queues import age
from pulsarjobs.clock import utc_now
from pulsarjobs.operations.durations import parse_duration
from pulsarjobs.transport.client_log import silent_logger
from pulsarjobs.transport.connection import Connection, probe
from pulsarjobs.wire.envelope import decode

console = Console()


@reports_errors
def signal(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(metavar="KEY", help="What the jobs wait for.")],
    data: Annotated[str, typer.Option("--data", help="The payload, as JSON.")] = "null",
    keep: Annotated[
        str,
        typer.Option(help="Also resume jobs that start waiting on KEY this long after: 30m, 2d."),
    ] = "24h",
    as_json: AsJson = False,
) -> None:
    """Send a signal: every durable job waiting on KEY resumes once with the payload, and so
    does each job that starts waiting on it within --keep. Prints how many it resumed."""
    payload = parse_payload(data)
    try:
        kept_for = parse_duration(keep)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--keep") from None
    settings = settings_of(ctx)
    probe(settings.service_url)
    with App(settings) as app:
        app.connection = Connection(settings, client_logger=silent_logger())
        resumed = app.signal(key, payload, keep=kept_for)
    if as_json:
        print_json({"key": key, "resumed": resumed, "kept_for_seconds": kept_for.total_seconds()})
        return
    jobs = "job" if resumed == 1 else "jobs"
    console.print(f"Signal {key!r} sent: {resumed} waiting {jobs} resumed; kept for {keep} for "
                  "jobs that start waiting on it.", highlight=False, soft_wrap=True)  # fmt: skip


def parse_payload(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--data") from None


@reports_errors
def waiting(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Option("--key", help="Only the jobs waiting on KEY.")] = None,
    as_json: AsJson = False,
) -> None:
    """The durable jobs waiting for a signal (`ctx.wait_for`, or their child jobs), the
    soonest to time out first."""
    with inspecting(ctx) as inspector:
        waits = [wait for wait in inspector.waiting() if key is None or wait.key == key]
    if as_json:
        print_json([{"key": wait.key, "job_id": wait.job_id, "wait": wait.name,
                     "type": decode(wait.job).type, "times_out_at": wait.deadline}
                    for wait in waits])  # fmt: skip
        return
    now = utc_now()
    rows = [(wait.key, wait.job_id, decode(wait.job).type, wait.name, times_out(wait.deadline, now))
            for wait in waits]  # fmt: skip
    columns = ("key", "job", "type", "wait", "times out")
    print_table(console, "Jobs waiting for a signal", columns, rows)


def times_out(deadline: datetime, now: datetime) -> str:
    return f"{deadline.astimezone():%Y-%m-%d %H:%M:%S} (in {age((deadline - now).total_seconds())})"
