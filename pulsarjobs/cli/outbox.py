"""`pulsarjobs outbox relay --database URL`: publish the outbox table's committed jobs;
`pulsarjobs outbox status`: how far that is behind."""

from __future__ import annotations

import json
import signal
import threading
from types import FrameType
from typing import Annotated

import structlog
import typer
from prometheus_client import CollectorRegistry

from pulsarjobs.cli.context import setting_overrides
from pulsarjobs.cli.output import reports_errors
from pulsarjobs.clock import utc_now
from pulsarjobs.logs import LogFormat, configure_logging
from pulsarjobs.scheduling.health import WEDGED_AFTER, SchedulerHealth
from pulsarjobs.settings import Settings
from pulsarjobs.transport.connection import Connection
from pulsarjobs.worker.metrics import serve

app = typer.Typer(no_args_is_help=True, help="The transactional outbox (docs/outbox.md).")
log = structlog.get_logger("pulsarjobs.outbox")


Database = Annotated[
    str,
    typer.Option(
        envvar="PULSARJOBS_OUTBOX_DATABASE",
        help="SQLAlchemy URL of the database with the outbox table, "
        "e.g. postgresql+psycopg://user:password@host/db.",
    ),
]


@app.command()
@reports_errors
def status(
    ctx: typer.Context,
    database: Database,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """How far publishing is behind: the namespace's rows not yet published and how long the
    oldest has waited, and the unique jobs not published because their key was held."""
    import sqlalchemy as sa  # the outbox extra's: imported by these commands alone

    from pulsarjobs.outbox.store import Store

    settings = Settings.from_env(**setting_overrides(ctx))
    engine = sa.create_engine(database)
    try:
        store = Store(engine, settings.full_namespace)
        lag, duplicates = store.lag(), store.duplicates()
    finally:
        engine.dispose()
    waited = (utc_now() - lag.oldest).total_seconds() if lag.oldest is not None else None
    if as_json:
        found = {"pending": lag.pending, "oldest_pending_seconds": waited, "duplicates": duplicates}
        typer.echo(json.dumps(found))
        return
    oldest = f", the oldest enqueued {waited:.1f} s ago" if waited is not None else ""
    typer.echo(f"{lag.pending} jobs not yet published in {settings.full_namespace}{oldest}")
    typer.echo(f"{duplicates} unique jobs not published: their key was held")


@app.command()
@reports_errors
def relay(
    ctx: typer.Context,
    database: Database,
    poll_interval: Annotated[
        float,
        typer.Option(min=0.05, help="Seconds between looks for new rows without a NOTIFY."),
    ] = 1.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            envvar="PULSARJOBS_METRICS_PORT",
            show_default=False,
            help="Serve its lag as Prometheus metrics, and /livez, /readyz, on this port.",
        ),
    ] = None,
    log_format: Annotated[str, typer.Option(help="console or json.")] = "console",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Publish the jobs committed to the outbox table until SIGTERM/SIGINT. Run several for
    high availability: one publishes, the others stand by."""
    import sqlalchemy as sa

    from pulsarjobs.outbox.metrics import RelayCollector
    from pulsarjobs.outbox.relay import Relay

    fmt: LogFormat = "json" if log_format == "json" else "console"
    configure_logging(fmt, log_level)
    connection = Connection(Settings.from_env(**setting_overrides(ctx)))
    engine = sa.create_engine(database, pool_pre_ping=True)
    running = Relay(engine, connection, poll_interval=poll_interval)
    server = None
    if metrics_port is not None:
        registry = CollectorRegistry()
        registry.register(RelayCollector(running))
        health = SchedulerHealth(running, WEDGED_AFTER, "outbox relay")
        server = serve(metrics_port, registry, health)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        running.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server_thread = threading.Thread(target=running.serve, name="pulsarjobs-outbox-relay",
                                     daemon=True)  # fmt: skip
    server_thread.start()
    try:
        while server_thread.is_alive() and not running.stopping.wait(0.5):
            pass
    finally:
        running.stop()
        running.presence.stopped()  # its last heartbeat said "stopped"
        connection.close()  # also ends a wait for leadership
        server_thread.join(10)
        engine.dispose()
        if server is not None:
            server.shutdown()
            server.server_close()
        log.info("outbox relay stopped", relay=running.name)
