"""`pulsarjobs namespace create`: the namespace jobs live in, with policies suited to them."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console

from pulsarjobs.cli.context import inspecting
from pulsarjobs.cli.output import fail, reports_errors
from pulsarjobs.operations.durations import parse_duration
from pulsarjobs.operations.namespaces import JobPolicies, set_up_namespace
from pulsarjobs.operations.permissions import revoke_role, topic_grants

app = typer.Typer(no_args_is_help=True, help="The namespace jobs live in.")
console = Console()


def duration_option(text: str | None) -> timedelta | None:
    if text is None or text in ("0", "none"):
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
@reports_errors
def create(
    ctx: typer.Context,
    retention: Annotated[
        str | None,
        typer.Option(help="Keep acknowledged jobs this long, e.g. 7d. [default: not kept]"),
    ] = None,
    ttl: Annotated[
        str | None,
        typer.Option(
            help="Delete jobs left unacknowledged this long, scheduled ones and dead letters "
            "included. [default: never]"
        ),
    ] = None,
    dedup: Annotated[
        bool,
        typer.Option(
            "--dedup/--no-dedup", help="Store a job re-sent by a reconnecting producer once."
        ),
    ] = True,
) -> None:
    """Create the namespace (or update it) with policies for jobs; see docs/operations.md."""
    policies = JobPolicies(duration_option(retention), duration_option(ttl), dedup)
    with inspecting(ctx) as inspector:
        namespace = inspector.settings.full_namespace
        created = set_up_namespace(inspector.admin, namespace, policies)
    console.print(f"{'Created' if created else 'Updated'} {namespace}:", highlight=False)
    console.print(f"  retention        {duration_text(policies.retention)}", highlight=False)
    console.print(f"  message TTL      {duration_text(policies.ttl)}", highlight=False)
    console.print(f"  de-duplication   {'on' if dedup else 'off'}", highlight=False)
    console.print("  idle topics      kept", highlight=False)


@app.command()
@reports_errors
def grant(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(help="The role (a token's subject).")],
    produce: Annotated[bool, typer.Option("--produce", help="May enqueue jobs.")] = False,
    consume: Annotated[bool, typer.Option("--consume", help="May run jobs.")] = False,
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic",
            help="Only on this topic (a name in the namespace; repeatable).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Let ROLE produce and/or consume on every topic of the namespace (replaces what it had),
    or on the --topic ones only. A worker needs both: it re-publishes retries. See
    docs/security.md."""
    actions = [name for name, wanted in (("produce", produce), ("consume", consume)) if wanted]
    if not actions:
        fail("say what the role may do: --produce, --consume or both", code=2)
    with inspecting(ctx) as inspector:
        targets = [inspector.full_name(name) for name in topic or []]
        for target in targets:
            inspector.admin.grant_on_topic(target, role, actions)
        if not targets:
            targets = [inspector.settings.full_namespace]
            inspector.admin.grant(targets[0], role, actions)
    for target in targets:
        console.print(f"{role} may {' and '.join(actions)} on {target}.", highlight=False)


@app.command()
@reports_errors
def revoke(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(help="The role (a token's subject).")],
) -> None:
    """Take every permission of ROLE away: on the namespace and on each of its topics."""
    with inspecting(ctx) as inspector:
        namespace = inspector.settings.full_namespace
        topics = revoke_role(inspector.admin, namespace, role)
    on_topics = f" (nor on the {len(topics)} topics it had grants on)" if topics else ""
    console.print(f"{role} has no permission on {namespace} any more{on_topics}.",
                  highlight=False)  # fmt: skip


@app.command()
@reports_errors
def permissions(ctx: typer.Context) -> None:
    """The roles with permissions on the namespace, and what each may do; then what roles may
    do on single topics beyond that."""
    with inspecting(ctx) as inspector:
        namespace = inspector.settings.full_namespace
        granted = inspector.admin.permissions(namespace)
        on_topics = topic_grants(inspector.admin, namespace)
    for role, actions in sorted(granted.items()):
        console.print(f"{role:<24} {', '.join(sorted(actions))}", highlight=False)
    for topic, grants in on_topics.items():
        name = topic.rsplit("/", 1)[-1]
        for role, actions in sorted(grants.items()):
            console.print(f"{role:<24} {', '.join(actions)} on topic {name}", highlight=False)


def duration_text(duration: timedelta | None) -> str:
    return str(duration) if duration else "none"
