"""Entry point of the `pulsarjobs` command: one Typer app, one sub-app per area."""

import typer

from pulsarjobs.cli import broker
from pulsarjobs.cli.worker import worker

app = typer.Typer(no_args_is_help=True, help="Background jobs on Apache Pulsar.")
app.add_typer(broker.app, name="broker")
app.command()(worker)


def main() -> None:
    app()
