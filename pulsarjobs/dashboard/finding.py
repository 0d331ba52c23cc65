"""Finding a job: /jobs/{id} opens a job's page by its id, whatever its state (the job index
and the rest: operations/job_lookup.py), and the top bar's search box asks /search."""

from __future__ import annotations

import re
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from pulsarjobs.dashboard import views
from pulsarjobs.dashboard.pages import query, render
from pulsarjobs.dashboard.state import Dashboard, dashboard_of
from pulsarjobs.errors import NotFound
from pulsarjobs.operations.job_lookup import JobState, find_job, where_said
from pulsarjobs.operations.jsonable import jsonable
from pulsarjobs.worker.progress import last_progress

# A job id as enqueue returns it (32 hex digits), or one a caller chose: one word.
LOOKS_LIKE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{7,127}")
TAB_OF_STATE: dict[JobState, str] = {
    "running": "workers",
    "waiting": "queues",
    "scheduled": "scheduled",
    "retrying": "retries",
    "dead": "dead",
    "ordered": "queues",
    "grouped": "queues",
    "finished": "queues",
    "failed": "queues",
    "ended": "workers",
    "settled": "queues",
}


def routes() -> list[Route]:
    return [
        Route("/jobs/{job}", job_page, name="job-by-id"),
        Route("/api/jobs/{job}", job_json, name="api-job-by-id"),
        Route("/search", search, name="search"),
    ]


def job_page(request: Request) -> Response:
    context = located(request, dashboard_of(request))
    name = "job" if context.get("found") else "located"
    return render(request, name, context, tab=context["tab"])


def job_json(request: Request) -> Response:
    return JSONResponse(jsonable(located(request, dashboard_of(request))))


def located(request: Request, dash: Dashboard) -> views.Context:
    """Where the job is, and what its page shows: its message's page when the message is still
    stored, else what the workers and its kept result say."""
    job_id = request.path_params["job"]
    seen = last_progress(dash.inspector.workers(everyone=True), job_id)
    found = find_job(dash.inspector, job_id, seen, dash.job_index)
    if found is None:
        raise NotFound(
            f"No job {job_id} is stored: no worker runs it, the job index has no entry of it and "
            "no result of it is kept (a job that settled without keeping its result is forgotten)."
        )
    context: views.Context = {}
    if found.message is not None:
        context = views.message_context(dash, found.message)
    context |= {
        "located": found,
        "said": where_said(found),
        "seen": seen,
        "tab": TAB_OF_STATE[found.state],
    }
    context.setdefault("steps", dash.inspector.steps(job_id))
    return context


def search(request: Request) -> Response:
    """The top bar's box: a job's id opens the job's page; any other text searches the jobs'
    types and arguments on the list page the search was made from (`on`), or on every list
    of every queue (search.html)."""
    text = request.query_params.get("q", "").strip()
    on = request.query_params.get("on", "")
    if not text:
        return RedirectResponse(on if LIST_PATH.fullmatch(on) else "/", status_code=303)
    dash = dashboard_of(request)
    if LOOKS_LIKE_ID.fullmatch(text) and found_by_id(dash, text):
        return RedirectResponse(f"/jobs/{quote(text, safe='')}", status_code=303)
    if LIST_PATH.fullmatch(on):
        kept = {key: request.query_params.get(key, "") for key in ("queue", "order")}
        return RedirectResponse(f"{on}?{query({**kept, 'q': text})}", status_code=303)
    queues = [stats.queue for stats in dash.snapshots.latest().queues]
    return render(request, "search", {"search_text": text, "queues": queues, "lists": LISTS})


def found_by_id(dash: Dashboard, text: str) -> bool:
    seen = last_progress(dash.inspector.workers(everyone=True), text)
    return find_job(dash.inspector, text, seen, dash.job_index) is not None


# The list pages a search by type or arguments runs on: (path, what it lists).
LISTS = (("/queues/{queue}", "due"), ("/scheduled?queue={queue}", "scheduled"),
         ("/retries?queue={queue}", "retrying"), ("/dead?queue={queue}", "dead"))  # fmt: skip
LIST_PATH = re.compile(r"/(scheduled|retries|dead|queues/[A-Za-z0-9][A-Za-z0-9_.]*)")
