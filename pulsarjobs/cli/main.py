"""Entry point of the `pulsarjobs` command: one Typer app, one sub-app per area."""

import typer

from pulsarjobs.cli import (
    batches,
    broker,
    cluster,
    dlq,
    flow,
    jobs,
    namespace,
    outbox,
    queues,
    topics,
    workers,
)
from pulsarjobs.cli.context import connection_options
from pulsarjobs.cli.dashboard import dashboard
from pulsarjobs.cli.enqueue import enqueue
from pulsarjobs.cli.scheduling import cron, scheduler
from pulsarjobs.cli.signals import signal, waiting
from pulsarjobs.cli.worker import worker
from pulsarjobs.logs import configure_logging

app = typer.Typer(no_args_is_help=True, help="Background jobs on Apache Pulsar.")
app.callback()(connection_options)
app.add_typer(broker.app, name="broker")
app.add_typer(cluster.app, name="cluster")
app.command()(worker)
app.command()(scheduler)
app.add_typer(cron, name="cron")
app.add_typer(outbox.app, name="outbox")
# Operating: see docs/operations.md.
app.command()(enqueue)
app.command()(signal)
app.command()(waiting)
app.add_typer(queues.app, name="queues")
app.add_typer(flow.app, name="flow")
app.add_typer(jobs.app, name="jobs")
app.add_typer(workers.app, name="workers")
app.add_typer(batches.app, name="batches")
app.add_typer(dlq.app, name="dlq")
app.add_typer(topics.app, name="topics")
app.add_typer(namespace.app, name="namespace")
app.command()(dashboard)


def main() -> None:
    configure_logging("console", "warning")  # commands that run something set their own level
    app()
