"""`pulsarjobs topics list | create | delete | stats`: the namespace's topics."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from pulsarjobs.cli.context import inspecting
from pulsarjobs.cli.output import AsJson, fail, print_json, print_table, reports_errors
from pulsarjobs.transport.topic_stats import TopicStats

app = typer.Typer(no_args_is_help=True, help="The topics of the namespace.")
console = Console()

TopicName = Annotated[
    str, typer.Argument(metavar="NAME", help="A name in the namespace, or persistent://t/ns/name.")
]


@app.command("list")
@reports_errors
def list_topics(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Every topic of the namespace, and what it is for."""
    with inspecting(ctx) as inspector:
        topics = inspector.topics()
        namespace = inspector.settings.full_namespace
    if as_json:
        print_json(topics)
        return
    rows = [(topic.name, topic.kind, str(topic.partitions or "-")) for topic in topics]
    print_table(console, f"Topics of {namespace}", ("name", "kind", "partitions"), rows)


@app.command()
@reports_errors
def create(
    ctx: typer.Context,
    name: TopicName,
    partitions: Annotated[
        int, typer.Option(min=0, help="Partitions; 0 makes a non-partitioned topic.")
    ] = 0,
) -> None:
    """Create a topic (queues need none: their topics appear on first use)."""
    with inspecting(ctx) as inspector:
        topic = inspector.full_name(name)
        if any(known.topic == topic for known in inspector.topics()):
            fail(f"{topic} already exists.")
        inspector.admin.create_topic(topic, partitions)
    shape = f" with {partitions} partitions" if partitions else ""
    console.print(f"Created {topic}{shape}.")


@app.command()
@reports_errors
def delete(
    ctx: typer.Context,
    name: TopicName,
    force: Annotated[
        bool, typer.Option("--force", help="Delete even with a backlog or connected clients.")
    ] = False,
) -> None:
    """Delete a topic; one still holding unacknowledged messages only with --force."""
    with inspecting(ctx) as inspector:
        stats = inspector.topic_stats(name)
        if not force:
            refuse_if_busy(stats)
        inspector.admin.delete_topic(stats.topic, partitioned=stats.partitions > 0, force=force)
    console.print(f"Deleted {stats.topic}.")


@app.command()
@reports_errors
def stats(ctx: typer.Context, name: TopicName, as_json: AsJson = False) -> None:
    """Rates, storage and each subscription's backlog."""
    with inspecting(ctx) as inspector:
        found = inspector.topic_stats(name)
    if as_json:
        print_json(found)
        return
    console.print(
        f"[bold]{found.topic}[/]  partitions {found.partitions or '-'}  producers "
        f"{found.producers}  in {found.rate_in:.1f}/s  out {found.rate_out:.1f}/s  "
        f"storage {found.storage_bytes} B  de-duplication {found.deduplication}",
        highlight=False,
    )
    columns = ("subscription", "type", "backlog", "unacked", "delayed", "consumers", "out/s")
    rows = [
        (sub.name, sub.type, str(sub.backlog), str(sub.unacked), str(sub.delayed),
         str(sub.consumers), f"{sub.rate_out:.1f}")
        for sub in found.subscriptions
    ]  # fmt: skip
    print_table(console, "Subscriptions", columns, rows, right=columns[2:])


def refuse_if_busy(stats: TopicStats) -> None:
    holding = [f"{sub.name}: {sub.backlog}" for sub in stats.subscriptions if sub.backlog]
    if holding:
        fail(
            f"{stats.topic} still holds unacknowledged messages ({', '.join(holding)}); "
            "--force deletes it anyway."
        )
    connected = stats.producers + sum(sub.consumers for sub in stats.subscriptions)
    if connected:
        fail(f"{stats.topic} has {connected} clients connected; --force deletes it anyway.")
