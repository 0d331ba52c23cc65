"""`pulsarjobs broker`: a local Apache Pulsar standalone for development and tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pulsarjobs.broker import LocalBroker
from pulsarjobs.broker.jars import PULSAR_VERSION, cached, classpath
from pulsarjobs.broker.security import BrokerSecurity
from pulsarjobs.cli.output import fail, reports_errors
from pulsarjobs.settings import Settings, external_service_url
from pulsarjobs.transport.admin import Admin

app = typer.Typer(no_args_is_help=True, help="Run a local Apache Pulsar standalone.")
console = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option(help="Where the broker keeps its config, log and data.", show_default=False),
]
Port = Annotated[int | None, typer.Option("--port", help="Binary protocol port (6650).")]
WebPort = Annotated[int | None, typer.Option("--web-port", help="Admin/HTTP port (8080).")]
BookiePort = Annotated[int | None, typer.Option("--bookie-port", help="Bookie port (3181).")]
# Shared with `pulsarjobs cluster start`.
Auth = Annotated[
    bool | None,
    typer.Option(
        "--auth/--no-auth",
        help="Token authentication and authorization; makes a secret and an admin token "
        "in the data directory. [default: as last started]",
        show_default=False,
    ),
]
Tls = Annotated[
    bool | None,
    typer.Option(
        "--tls/--no-tls",
        help="TLS on the broker ports with a CA made in the data directory. "
        "[default: as last started]",
        show_default=False,
    ),
]
Role = Annotated[str, typer.Argument(help="The role the token authenticates as.")]


@app.command()
@reports_errors
def start(
    data_dir: DataDir = None,
    port: Port = None,
    web_port: WebPort = None,
    bookie_port: BookiePort = None,
    setting: Annotated[
        list[str] | None,
        typer.Option("--set", help="Extra broker setting KEY=VALUE (repeatable)."),
    ] = None,
    auth: Auth = None,
    tls: Tls = None,
    journal_sync: Annotated[
        bool,
        typer.Option(
            "--journal-sync",
            help="Fsync the journal before acknowledging a write: acknowledged jobs survive a "
            "power cut too; enqueues are slower.",
        ),
    ] = False,
) -> None:
    """Start the broker in the background and wait until it serves."""
    if url := external_service_url():
        check_external(url)
        return
    broker = LocalBroker.at(
        data_dir, broker_port=port, web_port=web_port, bookie_port=bookie_port, auth=auth, tls=tls
    )
    broker.settings = parse_settings(setting or [])
    broker.journal_sync = journal_sync
    # The namespace the apps started here will use (PULSARJOBS_NAMESPACE), beside the default.
    wanted = Settings.from_env().full_namespace
    broker.namespaces = tuple(dict.fromkeys((*broker.namespaces, wanted)))
    if broker.status().state == "running":
        console.print(f"Pulsar is already running (pid {broker.status().pid}).")
        with Admin.of(broker.client_settings(), timeout=10.0) as admin:
            admin.ensure_namespace(wanted)
    else:
        began = time.monotonic()
        with console.status("starting Pulsar") as status:
            broker.start(progress=lambda text: status.update(text))
        console.print(f"Pulsar {broker.version} started in {time.monotonic() - began:.1f} s.")
    print_broker_status(broker)


@app.command()
@reports_errors
def stop(data_dir: DataDir = None) -> None:
    """Stop the broker that `start` launched with this data directory."""
    broker = LocalBroker.at(data_dir)
    with console.status("stopping Pulsar"):
        stopped = broker.stop()
    console.print("Pulsar stopped." if stopped else "Pulsar was not running.")


@app.command()
@reports_errors
def status(data_dir: DataDir = None) -> None:
    """Tell whether the broker runs: running, stopped, or stale (a pid file without its process)."""
    broker = LocalBroker.at(data_dir)
    current = broker.status()
    if current.state == "running":
        print_broker_status(broker)
    elif current.state == "stale":
        console.print(f"stale: {broker.pid_file} names a process that is gone; `start` cleans it.")
        raise typer.Exit(1)
    else:
        console.print("stopped")
        raise typer.Exit(1)


@app.command()
@reports_errors
def logs(
    data_dir: DataDir = None,
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines.")] = 50,
) -> None:
    """Show the end of the broker's log."""
    broker = LocalBroker.at(data_dir)
    tail = broker.log_tail(lines)
    if not tail:
        fail(f"No broker log at {broker.log_file} yet.")
    typer.echo("\n".join(tail))


@app.command()
@reports_errors
def token(role: Role, data_dir: DataDir = None) -> None:
    """Print a token for ROLE, signed with the secret of a broker started with --auth."""
    typer.echo(LocalBroker.at(data_dir).security.token(role))


@app.command()
@reports_errors
def fetch() -> None:
    """Download the broker's jars into the cache (done by `start` too); offline afterwards."""
    if cached(PULSAR_VERSION):
        console.print(f"Pulsar {PULSAR_VERSION} is cached.")
        return
    began = time.monotonic()
    with console.status("resolving the Pulsar broker with Maven") as progress:
        classpath(PULSAR_VERSION, lambda text: progress.update(text))
    console.print(f"Pulsar {PULSAR_VERSION} cached in {time.monotonic() - began:.0f} s.")


def print_broker_status(broker: LocalBroker) -> None:
    current = broker.status()
    typer.echo(f"running (pid {current.pid})")
    typer.echo(f"service URL: {current.service_url}")
    typer.echo(f"admin URL:   {current.admin_url}")
    typer.echo(f"data:        {broker.data_dir}")
    print_security(broker.security, broker.client_settings(), "broker")


def print_security(security: BrokerSecurity, client: Settings, command: str) -> None:
    """How a client uses brokers started with --auth or --tls (`command`: broker or cluster)."""
    if security.auth:
        typer.echo(f"admin token: export PULSARJOBS_TOKEN=$(cat {security.admin_token_file})")
        typer.echo(f"             (a role's token: pulsarjobs {command} token ROLE)")
    if security.tls:
        typer.echo(f"TLS CA:      export PULSARJOBS_TLS_TRUST_FILE={security.ca_file}")
    if security.auth or security.tls:
        typer.echo(f"             export PULSARJOBS_SERVICE_URL={client.service_url}")
        typer.echo(f"             export PULSARJOBS_ADMIN_URL={client.admin_url}")


def check_external(service_url: str) -> None:
    settings = Settings.from_env()
    with Admin.of(settings) as admin:
        if not admin.healthy():
            fail(f"PULSARJOBS_SERVICE_URL is set, but no healthy broker answers at {admin.url}: "
                 "unset it (and PULSARJOBS_ADMIN_URL) to start one here.")  # fmt: skip
    console.print(f"PULSARJOBS_SERVICE_URL is set: using the broker at {service_url}.")


def parse_settings(pairs: list[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--set {pair!r}: expected KEY=VALUE, e.g. --set maxMessageSize=10485760")
        settings[key.strip()] = value.strip()
    return settings
