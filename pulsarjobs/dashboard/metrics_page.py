"""The Metrics page: job types' runs, failures and run times over the last hour, day or week,
from what workers report each minute to the metrics topic (operations/metrics_history.py).
HTML at /job-metrics (/metrics is Prometheus' scrape), its JSON at /api/metrics; both take
`?range=1h|24h|7d`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pulsarjobs.dashboard import pages
from pulsarjobs.dashboard.state import dashboard_of
from pulsarjobs.operations.jsonable import jsonable

PATH = "/job-metrics"


def routes() -> list[Route]:
    return [
        Route(PATH, page, name="metrics"),
        Route("/api/metrics", api, name="api-metrics"),
    ]


def figures(request: Request) -> dict[str, Any]:
    """A bad range is a one-line 400 (ConfigurationError, pages.error_response)."""
    return dashboard_of(request).history.view(request.query_params.get("range", "1h"))


def page(request: Request) -> Response:
    return pages.render(request, "metrics", figures(request), tab="metrics")


def api(request: Request) -> Response:
    return JSONResponse(jsonable(figures(request)))


def seconds_text(seconds: float | None) -> str:
    """A run time read off a histogram: 40 ms, 2.5 s, 12 min."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.0f} min"


def trend_text(trend: float | None) -> str:
    return "new" if trend is None else f"{trend:+.0%}"


pages.templates.env.filters.update(seconds=seconds_text, trend=trend_text)
