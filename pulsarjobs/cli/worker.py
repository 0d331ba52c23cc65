"""`pulsarjobs worker APP`: run jobs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pulsarjobs.cli.context import setting_overrides
from pulsarjobs.cli.output import reports_errors
from pulsarjobs.logs import LogFormat, configure_logging
from pulsarjobs.processes import run_worker, supervise
from pulsarjobs.worker.feed import QueuePlan
from pulsarjobs.worker.health import WEDGED_AFTER


@reports_errors
def worker(
    ctx: typer.Context,
    app_reference: Annotated[
        str, typer.Argument(metavar="APP", help="module:attribute of your App.")
    ],
    queues: Annotated[
        str | None,
        typer.Option(
            "--queues",
            "-q",
            help="Strict order `critical,default,low`, or weighted `critical:6,default:3,low:1`."
            " [default: every queue the app's jobs and schedules name, weighted the same]",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Jobs at once, per process.")
    ] = 10,
    processes: Annotated[
        int, typer.Option("--processes", "-p", min=1, help="Worker processes.")
    ] = 1,
    subscription: Annotated[
        str | None,
        typer.Option(
            help="Subscription to serve; subscriptions each get every job. [default: pulsarjobs]"
        ),
    ] = None,
    prefetch: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Jobs the client holds per queue beyond running ones. "
            "[default: 4 x concurrency, at least 32]",
        ),
    ] = None,
    shutdown_timeout: Annotated[
        float, typer.Option(help="Seconds running jobs get to finish on stop.")
    ] = 25.0,
    with_scheduler: Annotated[
        bool,
        typer.Option(
            "--scheduler", help="Also run the app's periodic schedules (one leader among all)."
        ),
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            envvar="PULSARJOBS_METRICS_PORT",
            help="Serve Prometheus metrics on this port (one port for all --processes).",
            show_default=False,
        ),
    ] = None,
    wedged_after: Annotated[
        float,
        typer.Option(
            min=1,
            help="With --metrics-port: /livez fails once the event loop stood this many seconds.",
        ),
    ] = WEDGED_AFTER,
    log_format: Annotated[str, typer.Option(help="console or json.")] = "console",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run jobs from the given queues until SIGTERM/SIGINT; SIGTSTP stops fetching (quiet).
    With --metrics-port, /livez and /readyz there answer Kubernetes' probes."""
    fmt: LogFormat = "json" if log_format == "json" else "console"
    if queues is not None:
        QueuePlan.parse(queues)  # a bad queue list fails here, before any process starts
    settings = setting_overrides(ctx)  # `pulsarjobs --service-url ... worker`
    options: dict[str, Any] = {
        "queues": queues,
        "concurrency": concurrency,
        "prefetch": prefetch,
        "shutdown_timeout": shutdown_timeout,
        "subscription": subscription,
    }
    if processes > 1:
        code = supervise(
            app_reference, processes, fmt, log_level, options, with_scheduler, settings,
            metrics_port, wedged_after,
        )  # fmt: skip
        raise typer.Exit(code)
    configure_logging(fmt, log_level)
    run_worker(app_reference, options, with_scheduler, settings, metrics_port,
               wedged_after=wedged_after)  # fmt: skip
