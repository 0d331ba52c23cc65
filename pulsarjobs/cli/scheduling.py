"""`pulsarjobs scheduler APP` and `pulsarjobs cron list APP`: periodic jobs."""

from __future__ import annotations

from typing import Annotated

import typer
from prometheus_client import REGISTRY
from rich.console import Console

from pulsarjobs.cli.context import setting_overrides
from pulsarjobs.cli.output import print_json, print_table, reports_errors
from pulsarjobs.loading import load_app
from pulsarjobs.logs import LogFormat, configure_logging
from pulsarjobs.scheduling.health import WEDGED_AFTER, SchedulerHealth
from pulsarjobs.scheduling.scheduler import Scheduler, last_ticks
from pulsarjobs.scheduling.schedules import schedule_statuses
from pulsarjobs.worker.metrics import serve

AppReference = Annotated[str, typer.Argument(metavar="APP", help="module:attribute of your App.")]


cron = typer.Typer(no_args_is_help=True, help="Periodic jobs declared with @app.periodic.")


@reports_errors
def scheduler(
    ctx: typer.Context,
    app_reference: AppReference,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            show_default=False,
            help="Serve /livez, /readyz (and the process's metrics) on this port.",
        ),
    ] = None,
    wedged_after: Annotated[
        float,
        typer.Option(
            min=1,
            help="With --metrics-port: /livez fails once the scheduler stood this many seconds.",
        ),
    ] = WEDGED_AFTER,
    log_format: Annotated[str, typer.Option(help="console or json.")] = "console",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Enqueue periodic jobs at their ticks. Run several for high availability: exactly one
    enqueues each tick."""
    fmt: LogFormat = "json" if log_format == "json" else "console"
    configure_logging(fmt, log_level)
    running = Scheduler(load_app(app_reference, setting_overrides(ctx)))
    server = None
    if metrics_port is not None:
        server = serve(metrics_port, REGISTRY, SchedulerHealth(running, wedged_after))
    try:
        running.run()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()


@cron.command("list")
@reports_errors
def list_schedules(
    ctx: typer.Context,
    app_reference: AppReference,
    runs: Annotated[int, typer.Option(min=1, help="How many next runs to show.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Each schedule with its next runs and the last tick a scheduler enqueued."""
    app = load_app(app_reference, setting_overrides(ctx))
    try:
        last = last_ticks(app.connection.client, app.settings) if app.schedules else {}
        statuses = schedule_statuses(app, runs, last)
    finally:
        app.close()
    if as_json:
        print_json(statuses)
        return
    rows = [
        (status.schedule, status.cron, status.tz, status.job, status.missed,
         "\n".join(status.next), status.last_tick or "never")
        for status in statuses
    ]  # fmt: skip
    columns = ("schedule", "cron", "tz", "job", "missed", "next runs", "last tick")
    print_table(Console(), "Schedules", columns, rows, wraps=columns[5:])
