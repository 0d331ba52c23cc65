"""The dashboard as an ASGI app: pages, their JSON, actions, static files, the guard in front."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pulsarjobs.app import App
from pulsarjobs.dashboard import actions, finding, metrics_page, pages, ready
from pulsarjobs.dashboard.auth import Guard, Secret
from pulsarjobs.dashboard.state import Dashboard, dashboard_of
from pulsarjobs.errors import PulsarJobsError
from pulsarjobs.settings import Settings

STATIC = Path(__file__).parent / "static"


def create_app(
    settings: Settings, secret: Secret, *, read_only: bool = False, app: App | None = None
) -> Starlette:
    """The dashboard on the broker `settings` name; `app`, when given, shows its schedules."""
    dashboard = Dashboard.open(settings, secret, read_only, app)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        dashboard.start()
        yield
        dashboard.close()

    web = Starlette(
        routes=[
            *actions.routes(),
            *pages.routes(),
            *finding.routes(),
            *ready.routes(),
            *metrics_page.routes(),
            Route("/metrics", metrics),
            Route("/livez", answering("live")),
            Route("/readyz", answering("ready")),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(Guard, secret=secret, read_only=read_only)],
        exception_handlers={PulsarJobsError: pages.error_response},
        lifespan=lifespan,
    )
    web.state.dashboard = dashboard
    return web


def metrics(request: Request) -> Response:
    """Prometheus' scrape: per-queue gauges from the broker (workers serve their own)."""
    body = generate_latest(dashboard_of(request).metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def answering(said: str) -> Callable[[Request], Response]:
    """A probe: the dashboard answers while it serves, broker or not (a page without the
    broker says so itself); a wedged server answers nothing, which fails the probe."""

    def probe(_: Request) -> Response:
        return PlainTextResponse(f"{said}\n")

    return probe
