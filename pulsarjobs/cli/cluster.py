"""`pulsarjobs cluster`: a local Apache Pulsar cluster (ZooKeeper, 3 bookies, 2 brokers)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pulsarjobs.broker.cluster import LocalCluster
from pulsarjobs.broker.cluster_ports import ClusterPorts
from pulsarjobs.cli.broker import Auth, Role, Tls, print_security
from pulsarjobs.cli.output import fail, reports_errors

app = typer.Typer(
    no_args_is_help=True,
    help="Run a local Apache Pulsar cluster: ZooKeeper, three bookies, two brokers.",
)
console = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option(help="Where the cluster keeps its configs, logs and data.", show_default=False),
]


@app.command()
@reports_errors
def start(
    data_dir: DataDir = None,
    ports_from: Annotated[
        int | None,
        typer.Option(
            "--ports-from",
            help="Use 8 consecutive ports from this one (ZooKeeper, 3 bookies, 2 brokers, "
            "2 web ports) instead of 2181, 3181-3183, 6650-6651, 8080-8081.",
            show_default=False,
        ),
    ] = None,
    session_timeout_ms: Annotated[
        int | None,
        typer.Option(
            "--session-timeout-ms",
            help="Metadata session timeout: how long a dead broker keeps its topics (10000).",
            show_default=False,
        ),
    ] = None,
    auth: Auth = None,
    tls: Tls = None,
) -> None:
    """Start every node that does not run, and wait until the cluster serves."""
    ports = ClusterPorts.starting_at(ports_from) if ports_from else None
    cluster = LocalCluster.at(data_dir, ports, session_timeout_ms, auth=auth, tls=tls)
    running = cluster.status().state == "running"
    began = time.monotonic()
    with console.status("starting the Pulsar cluster") as status:
        cluster.start(progress=lambda text: status.update(text))  # checks a running one's options
    if running:
        console.print("The cluster is already running.")
    else:
        console.print(f"Pulsar cluster started in {time.monotonic() - began:.1f} s.")
    print_cluster_status(cluster)


@app.command()
@reports_errors
def stop(data_dir: DataDir = None) -> None:
    """Stop every node of the cluster, brokers first."""
    cluster = LocalCluster.at(data_dir)
    with console.status("stopping the Pulsar cluster"):
        stopped = cluster.stop()
    console.print("Pulsar cluster stopped." if stopped else "The cluster was not running.")


@app.command()
@reports_errors
def status(data_dir: DataDir = None) -> None:
    """Each node's state; exit code 1 unless all run."""
    cluster = LocalCluster.at(data_dir)
    print_cluster_status(cluster)
    if cluster.status().state != "running":
        raise typer.Exit(1)


@app.command()
@reports_errors
def logs(
    node: Annotated[str, typer.Argument(help="zookeeper, bookie-1..3 or broker-1..2.")],
    data_dir: DataDir = None,
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines.")] = 50,
) -> None:
    """Show the end of one node's log."""
    cluster = LocalCluster.at(data_dir)
    if node not in cluster.nodes:
        fail(f"No node {node!r}: choose one of {', '.join(cluster.nodes)}.")
    tail = cluster.log_tail(node, lines)
    if not tail:
        fail(f"No log at {cluster.nodes[node].process.log_file} yet.")
    typer.echo("\n".join(tail))


@app.command()
@reports_errors
def token(role: Role, data_dir: DataDir = None) -> None:
    """Print a token for ROLE, signed with the secret of a cluster started with --auth."""
    typer.echo(LocalCluster.at(data_dir).security.token(role))


@app.command()
@reports_errors
def kill(
    node: Annotated[str, typer.Argument(help="bookie-1..3 or broker-1..2.")],
    data_dir: DataDir = None,
) -> None:
    """kill -9 one node, to see a failover; `start` brings it back."""
    cluster = LocalCluster.at(data_dir)
    if node not in cluster.nodes:
        fail(f"No node {node!r}: choose one of {', '.join(cluster.nodes)}.")
    if not cluster.kill(node):
        fail(f"{node} was not running.")
    console.print(f"{node} killed.")


def print_cluster_status(cluster: LocalCluster) -> None:
    current = cluster.status()
    typer.echo(current.state)
    for node in current.nodes:
        pid = f"pid {node.pid}" if node.pid else ""
        typer.echo(f"  {node.name:<10} {node.state:<8} port {node.port:<6} {pid}")
    typer.echo(f"service URL: {current.service_url}")
    typer.echo(f"admin URL:   {current.admin_url}")
    typer.echo(f"data:        {cluster.data_dir}")
    if current.state != "stopped":
        print_security(cluster.security, cluster.client_settings(), "cluster")
