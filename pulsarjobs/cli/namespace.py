"""`pulsarjobs namespace create`: the namespace jobs live in, with policies suited to them."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console

from pulsarjobs.cli.context import inspecting
from pulsarjobs.cli.output import reports_errors
from pulsarjobs.durations import parse_duration
from pulsarjobs.namespaces import JobPolicies, set_up_namespace

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


def duration_text(duration: timedelta | None) -> str:
    return str(duration) if duration else "none"
