"""Where the operations commands find the broker: options before the command, else PULSARJOBS_*
environment variables, else the defaults (see `Settings.from_env`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from pulsarjobs.cli.output import fail
from pulsarjobs.errors import ConfigurationError
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.settings import Settings


def connection_options(
    ctx: typer.Context,
    service_url: Annotated[
        str | None,
        typer.Option(help="Broker service URL. (env PULSARJOBS_SERVICE_URL)", show_default=False),
    ] = None,
    admin_url: Annotated[
        str | None,
        typer.Option(
            help="Broker admin (REST) URL. (env PULSARJOBS_ADMIN_URL)", show_default=False
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="JWT for token authentication. (env PULSARJOBS_TOKEN)", show_default=False
        ),
    ] = None,
    tls_trust_file: Annotated[
        str | None,
        typer.Option(
            help="CA file (PEM) the broker's TLS certificate is signed by. "
            "(env PULSARJOBS_TLS_TRUST_FILE)",
            show_default=False,
        ),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option(help="(env PULSARJOBS_TENANT)", show_default=False)
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="(env PULSARJOBS_NAMESPACE)", show_default=False)
    ] = None,
    subscription: Annotated[
        str | None,
        typer.Option(
            help="Subscription whose queues to look at. (env PULSARJOBS_SUBSCRIPTION)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Background jobs on Apache Pulsar."""
    overrides: dict[str, Any] = {
        "service_url": service_url,
        "admin_url": admin_url,
        "token": token,
        "tls_trust_file": tls_trust_file,
        "tenant": tenant,
        "namespace": namespace,
        "subscription": subscription,
    }
    ctx.obj = overrides


def settings_of(ctx: typer.Context) -> Settings:
    overrides = ctx.obj if isinstance(ctx.obj, dict) else {}
    try:
        return Settings.from_env(**overrides)
    except (ConfigurationError, ValueError) as exc:
        fail(str(exc), code=2)


@contextmanager
def inspecting(ctx: typer.Context) -> Iterator[Inspector]:
    """An Inspector on the broker the command names."""
    with Inspector(settings_of(ctx)) as inspector:
        yield inspector


def setting_overrides(ctx: typer.Context) -> dict[str, Any]:
    """The connection options given before the command, for commands that load an app."""
    return {key: value for key, value in (ctx.obj or {}).items() if value is not None}
