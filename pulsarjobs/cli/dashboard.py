"""`pulsarjobs dashboard [APP]`: the web dashboard, served in this process."""

from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Annotated

import typer

from pulsarjobs.cli.context import setting_overrides, settings_of
from pulsarjobs.cli.output import fail, reports_errors
from pulsarjobs.loading import load_app

DEFAULT_PORT = 7420


@reports_errors
def dashboard(
    ctx: typer.Context,
    app_reference: Annotated[
        str | None,
        typer.Argument(
            metavar="[APP]",
            help="module:attribute of your App: its settings, and its schedules on the Cron page.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = DEFAULT_PORT,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Show everything, change nothing.")
    ] = False,
) -> None:
    """Serve the web dashboard: queues, jobs, dead letters, workers, schedules. It needs a
    token (env PULSARJOBS_DASHBOARD_TOKEN); on a loopback address one is made up and shown."""
    # The web stack loads for this command only: every other command, workers above all, needs
    # none of it.
    import uvicorn

    from pulsarjobs.dashboard import Secret, create_app
    from pulsarjobs.dashboard.auth import SHORTEST_TOKEN, TOKEN_VARIABLE, is_loopback

    token = os.environ.get(TOKEN_VARIABLE) or None
    if token is None and not is_loopback(host):
        fail(
            f"Set {TOKEN_VARIABLE} to serve the dashboard on {host}: "
            "on an address others can reach it needs a token you chose.",
            code=2,
        )
    if token is not None and len(token) < SHORTEST_TOKEN and not is_loopback(host):
        fail(
            f"{TOKEN_VARIABLE} must have at least {SHORTEST_TOKEN} characters to serve the "
            f"dashboard on {host}, where others can try tokens: make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(24))'`.",
            code=2,
        )
    app = load_app(app_reference, setting_overrides(ctx)) if app_reference else None
    settings = app.settings if app is not None else settings_of(ctx)
    secret = Secret(token) if token else Secret.generated()
    web = create_app(settings, secret, read_only=read_only, app=app)
    address = f"[{host}]" if ":" in host else host
    url = f"http://{address}:{port}/"
    typer.echo(f"Dashboard of {settings.full_namespace} at {url}")
    if token is None:
        typer.echo(f"Open it with its token: {url}?token={secret.token}")
    else:
        typer.echo(f"Log in with the token in {TOKEN_VARIABLE}.")
    # uvicorn stops gracefully on SIGTERM, then raises the signal again, which would end the
    # process as killed by it (exit 143): a stop Kubernetes asks for ends with 0, as a worker's.
    signal.signal(signal.SIGTERM, exit_cleanly)
    uvicorn.run(web, host=host, port=port, log_level="warning")


def exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
