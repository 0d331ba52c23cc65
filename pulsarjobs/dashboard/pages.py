"""Each page twice: as HTML rendered by its template, and as JSON of the same context under
/api/. Also how times, sizes and errors are shown."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from pulsarjobs.clock import utc_now
from pulsarjobs.dashboard import views, waits
from pulsarjobs.dashboard.state import POLL_SECONDS, Dashboard, dashboard_of
from pulsarjobs.errors import (
    BrokerUnavailable,
    ConfigurationError,
    NotDueLater,
    NotFound,
    PulsarJobsError,
)
from pulsarjobs.operations.durable_steps import took_text
from pulsarjobs.operations.jsonable import jsonable
from pulsarjobs.wire.envelope import EARLIER_ERRORS_KEPT

View = Callable[[Request, Dashboard], views.Context]
NOTICE_COOKIE = "pulsarjobs_notice"
NAV = (
    ("home", "/", "Home"),
    ("queues", "/queues", "Queues"),
    ("scheduled", "/scheduled", "Scheduled"),
    ("retries", "/retries", "Retries"),
    ("dead", "/dead", "Dead"),
    ("workers", "/workers", "Workers"),
    ("cron", "/cron", "Cron"),
    ("batches", "/batches", "Batches"),
    ("waiting", "/waiting", "Waiting"),
    ("metrics", "/job-metrics", "Metrics"),
)


@dataclass(frozen=True, slots=True)
class Page:
    path: str  # of the HTML page; the JSON is at /api + path (/api/home for /)
    name: str  # its template, and its tab in the nav bar
    view: View
    tab: str | None = None  # the tab it belongs to, when not its own

    @property
    def api_path(self) -> str:
        return "/api/home" if self.path == "/" else f"/api{self.path}"


PAGES = (
    Page("/", "home", views.home),
    Page("/queues", "queues", views.queues),
    Page("/queues/{queue}", "queue", views.queue, tab="queues"),
    Page("/scheduled", "scheduled", views.scheduled),
    Page("/retries", "retries", views.retries),
    Page("/dead", "dead", views.dead),
    Page("/workers", "workers", views.workers),
    Page("/cron", "cron", views.cron),
    Page("/batches", "batches", views.batches),
    Page("/batches/{batch}", "batch", views.batch, tab="batches"),
    Page("/waiting", "waiting", waits.waiting),
    Page("/jobs/{queue}/{where}/{position}", "job", views.job, tab="queues"),
    Page("/tasks/{task}", "task", views.task, tab="dead"),
)

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def routes() -> list[Route]:
    found: list[Route] = []
    for page in PAGES:
        found.append(Route(page.path, html_endpoint(page), name=page.name))
        found.append(Route(page.api_path, json_endpoint(page), name=f"api-{page.name}"))
    return found


def html_endpoint(page: Page) -> Callable[[Request], Response]:
    def endpoint(request: Request) -> Response:
        dash = dashboard_of(request)
        context = page.view(request, dash)
        tab = context.get("tab") or page.tab or page.name  # a page may say where it belongs
        return render(request, page.name, context, tab=tab)

    return endpoint


def json_endpoint(page: Page) -> Callable[[Request], Response]:
    def endpoint(request: Request) -> Response:
        return JSONResponse(jsonable(page.view(request, dashboard_of(request))))

    return endpoint


def render(
    request: Request, name: str, context: views.Context, tab: str | None = None, status: int = 200
) -> Response:
    dash: Dashboard | None = getattr(request.app.state, "dashboard", None)
    raw_notice = request.cookies.get(NOTICE_COOKIE)
    notice = unquote(raw_notice) if raw_notice is not None else None
    response = templates.TemplateResponse(
        request,
        f"{name}.html",
        {
            **context,
            "nav": NAV,
            "tab": tab,
            "read_only": dash.read_only if dash else True,
            "namespace": dash.settings.full_namespace if dash else "",
            "subscription": dash.settings.subscription if dash else "",
            "poll_ms": int(POLL_SECONDS * 1000),
            "notice": notice,
            "now": utc_now(),
        },
        status_code=status,
    )
    if raw_notice is not None:
        response.delete_cookie(NOTICE_COOKIE)  # shown once
    return response


def with_notice(response: Response, text: str) -> Response:
    """Show `text` once on the next page (a cookie, so no link can make the dashboard say
    something it did not)."""
    response.set_cookie(NOTICE_COOKIE, quote(text), max_age=60, httponly=True, samesite="strict")
    return response


def error_response(request: Request, exc: Exception) -> Response:
    """A pulsarjobs error as one line: 400 for a wrong parameter, 404, 409 for an action the
    job's state refuses, 503 with no broker."""
    assert isinstance(exc, PulsarJobsError)
    status = 500
    if isinstance(exc, views.BadRequest | ConfigurationError):
        status = 400
    elif isinstance(exc, NotFound):
        status = 404
    elif isinstance(exc, NotDueLater):
        status = 409
    elif isinstance(exc, BrokerUnavailable):
        status = 503
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": str(exc)}, status_code=status)
    return render(request, "error", {"error": str(exc), "status": status}, status=status)


# -- how things are shown ----------------------------------------------------------------------


def iso(moment: datetime | None) -> str:
    """UTC, to the second: 2026-01-04T09:00:00Z."""
    if moment is None:
        return "-"
    return moment.astimezone(utc_now().tzinfo).strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """`3m ago`, or `in 5m` for a time to come."""
    if moment is None:
        return ""
    seconds = ((now or utc_now()) - moment).total_seconds()
    text = span(abs(seconds))
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for limit, unit, size in ((120, "s", 1), (7200, "m", 60), (172800, "h", 3600)):
        if seconds < limit:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds / 86400:.0f}d"


def size_text(count: int | None) -> str:
    if count is None:
        return "-"
    size = float(count)
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def number(count: int) -> str:
    """1,000,000: readable at a glance."""
    return f"{count:,}"


def query(params: dict[str, Any]) -> str:
    """A query string of the parameters that have a value."""
    return urlencode({key: value for key, value in params.items() if value})


def as_json(value: Any) -> str:
    return json.dumps(jsonable(value), ensure_ascii=False)


templates.env.globals["earlier_kept"] = EARLIER_ERRORS_KEPT  # a job page's earlier errors
templates.env.filters.update(
    iso=iso,
    ago=ago,
    span=span,
    size=size_text,
    json=as_json,
    query=query,
    num=number,
    took=took_text,
)
