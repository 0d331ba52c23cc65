"""What each page shows, read into a context: the HTML page renders it with its template, and the
same context is the page's JSON under /api/ (pages.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from starlette.requests import Request

from pulsarjobs.clock import utc_now
from pulsarjobs.dashboard.samples import Point
from pulsarjobs.dashboard.snapshot import Snapshot
from pulsarjobs.dashboard.state import Dashboard
from pulsarjobs.errors import NotFound, PulsarJobsError
from pulsarjobs.operations.browse import (
    PAGE_SIZES,
    WHERE,
    Count,
    FoundMessage,
    JobMessage,
    Page,
    Where,
)
from pulsarjobs.operations.cancel_matching import JobKeys
from pulsarjobs.operations.cancels import cancelled_jobs
from pulsarjobs.operations.dead_letters import DeadLetterFilter
from pulsarjobs.operations.durable_steps import asleep_until
from pulsarjobs.operations.durations import parse_since
from pulsarjobs.operations.job_search import JobSearch
from pulsarjobs.operations.retention import KEPT_FOREVER
from pulsarjobs.scheduling.leader import scheduler_leader
from pulsarjobs.scheduling.schedules import recorded_ticks, schedule_statuses
from pulsarjobs.scheduling.scope import schedules_scope
from pulsarjobs.transport.backlog import Position, parse_position
from pulsarjobs.transport.backlog_newest import ORDERS, Order
from pulsarjobs.transport.topics import check_queue_name
from pulsarjobs.worker.progress import last_progress
from pulsarjobs.workflows.batch_state import MEMBERS_LISTED

Context = dict[str, Any]
NEXT_RUNS = 3


class BadRequest(PulsarJobsError):
    """A parameter of the request is wrong; the message says which and how."""


def home(request: Request, dash: Dashboard) -> Context:
    snapshot = dash.snapshots.latest()
    return {
        "totals": snapshot.totals,
        "taken_at": snapshot.taken_at,
        "scan_limit": snapshot.scan_limit,
        "series": series(dash.samples.points()),
        "outbox": snapshot.outbox,
    }


def queues(request: Request, dash: Dashboard) -> Context:
    snapshot = dash.snapshots.latest()
    return {
        "queues": snapshot.queues,
        "flow": snapshot.flow,
        "fair": snapshot.fair,
        "taken_at": snapshot.taken_at,
        "scan_limit": snapshot.scan_limit,
        "outbox": snapshot.outbox,
        "job_keys": list(JobKeys.__annotations__),  # what cancel by key matches on
    }


def queue(request: Request, dash: Dashboard) -> Context:
    size, after = page_size(request), cursor(request)  # bad parameters fail before any read
    name = existing_queue(dash, request.path_params["queue"])
    stats = [stats for stats in dash.snapshots.latest().queues if stats.queue == name]
    search = job_search(request)
    return {
        "queue": name,
        "stats": stats[0] if stats else None,
        "size": size,
        "page": dash.browser.waiting(name, after, size, search),
        **searched_on(f"/queues/{name}", search),
    }


def scheduled(request: Request, dash: Dashboard) -> Context:
    snapshot = dash.snapshots.latest()
    counts = {q.queue: q.scheduled for q in snapshot.queues}
    return jobs_due_later(request, dash, snapshot, counts, dash.scheduled, dash.count_scheduled)


def retries(request: Request, dash: Dashboard) -> Context:
    snapshot = dash.snapshots.latest()
    browser = dash.browser
    counts = {q.queue: q.retrying or 0 for q in snapshot.queues}
    return jobs_due_later(request, dash, snapshot, counts, browser.retries, browser.count_retries)


def jobs_due_later(
    request: Request,
    dash: Dashboard,
    snapshot: Snapshot,
    counts: dict[str, int],
    read: Callable[[str, Position | None, int, JobSearch | None], Page[JobMessage]],
    count: Callable[[str], Count],
) -> Context:
    """The Scheduled or the Retries page: a queue's jobs due later, which one may run now,
    cancel or kill, and how many there are, for the buttons acting on them all."""
    name = chosen_queue(request, snapshot, counts)
    size, search = page_size(request), job_search(request)
    page = read(name, cursor(request), size, search) if name else None
    return {
        "queue": name,
        "queues": queue_names(snapshot),
        "size": size,
        "page": page,
        "cancelled": cancelled_among(dash, page.items if page else ()),
        "everything": everything(dash, page, lambda: count(name) if name else Count(0, True)),
        **searched_on(request.url.path, search),
    }


def everything(dash: Dashboard, page: Page[Any] | None, count: Callable[[], Count]) -> Count | None:
    """How many the page's filter matches, said by the buttons acting on them all (None: no
    button): the page's own count when it read the whole topic from its start."""
    if dash.read_only or page is None:
        return None
    if page.after is None and page.next_after is None:
        return Count(page.matched, complete=True)
    return count()


def dead(request: Request, dash: Dashboard) -> Context:
    snapshot = dash.snapshots.latest()
    name = chosen_queue(request, snapshot, {q.queue: q.dead for q in snapshot.queues})
    size = page_size(request)
    matching, search = dead_letter_filter(request.query_params), job_search(request)
    order = list_order(request)
    read = dash.browser.dead
    page = read(name, matching, cursor(request), size, search, order) if name else None
    counted = everything(dash, page, lambda: dash.browser.count_dead(name or "", matching))
    return {
        "queue": name,
        "queues": queue_names(snapshot),
        "filter": {
            "type": matching.job_type,
            "error": matching.error,
            "since": matching.since_text,
        },
        "size": size,
        "order": order,
        "page": page,
        "everything": counted,
        "tasks": [t for t in dash.tasks.recent() if (t.queue, t.where) == (name, "dead")],
        "retention": next((q.dead_retention for q in snapshot.queues if q.queue == name), None)
        or KEPT_FOREVER,
        **searched_on("/dead", search),
    }


def workers(request: Request, dash: Dashboard) -> Context:
    everyone = request.query_params.get("all") == "1"
    return {"workers": dash.inspector.workers(everyone=everyone), "all": everyone}


def cron(request: Request, dash: Dashboard) -> Context:
    inspector = dash.inspector
    ticks = recorded_ticks(inspector.admin, inspector.client, dash.settings)
    app = dash.app
    return {
        "schedules": schedule_statuses(app, NEXT_RUNS, ticks) if app is not None else None,
        "last_ticks": ticks,
        "leader": scheduler_leader(
            inspector.admin, dash.settings, schedules_scope(app) if app is not None else None
        ),
        "now": utc_now(),
    }


def batches(request: Request, dash: Dashboard) -> Context:
    return {"batches": [batch.as_dict() for batch in dash.inspector.batches()]}


def batch(request: Request, dash: Dashboard) -> Context:
    batch_id = request.path_params["batch"]
    every = dash.inspector.batches()
    found = next((batch for batch in every if batch.id == batch_id), None)
    if found is None:
        raise NotFound(f"No batch {batch_id!r}: a worker records a batch once it runs.")
    children = [batch.id for batch in every if batch.parent == batch_id]  # members that are batches
    return {"batch": found.as_dict(), "tab": "batches", "members_listed": MEMBERS_LISTED,
            "children": children}  # fmt: skip


def job(request: Request, dash: Dashboard) -> Context:
    name = queue_param(request.path_params["queue"])
    where = where_param(request.path_params["where"])
    position = parse_position_param(request.path_params["position"])
    found = dash.browser.message(name, where, position)
    if found is None:
        raise NotFound(f"No message at {request.path_params['position']} on {where} of {name}.")
    return message_context(dash, found)


def message_context(dash: Dashboard, found: FoundMessage) -> Context:
    """What a job's page shows of its message (found by position, or by its id: finding.py)."""
    where = found.where
    cancelled = cancelled_among(dash, [found.job] if found.job else [])
    envelope = found.job.envelope if found.job else None
    seen = None  # where it runs, or ended lately, with its progress (progress.py)
    if envelope is not None and where != "dead":
        seen = last_progress(dash.inspector.workers(everyone=True), envelope.id)
    steps = dash.inspector.steps(envelope.id) if envelope is not None else []  # durable jobs'
    return {
        "found": found,
        "cancelled": cancelled,
        "tab": TAB_OF[where],
        "seen": seen,
        "steps": steps,
        "asleep_until": asleep_until(steps),
    }


TAB_OF: dict[Where, str] = {"jobs": "queues", "retry": "retries", "dead": "dead"}  # a job's page


def task(request: Request, dash: Dashboard) -> Context:
    found = dash.tasks.get(request.path_params["task"])
    if found is None:
        raise NotFound("No such task: the dashboard forgets them when it restarts.")
    return {"task": found, "tab": found.tab}


def cancelled_among(dash: Dashboard, jobs: Iterable[JobMessage]) -> list[str]:
    """The ids of those jobs a cancel covers: made at or before it (as workers judge)."""
    envelopes = [job.envelope for job in jobs if job.envelope is not None]
    if not envelopes:
        return []
    marks = cancelled_jobs(dash.inspector.connection)
    return sorted(
        envelope.id
        for envelope in envelopes
        if envelope.id in marks and envelope.created_at <= marks[envelope.id].cancelled_at
    )


# -- parameters --------------------------------------------------------------------------------


def queue_param(name: str) -> str:
    try:
        return check_queue_name(name)
    except PulsarJobsError as exc:
        raise BadRequest(str(exc)) from None


def existing_queue(dash: Dashboard, name: str) -> str:
    """A queue's name, if the broker has a topic of it or the app declares it; else NotFound."""
    name = queue_param(name)
    declared = dash.app.declared_queues() if dash.app is not None else ()
    if name in declared or name in dash.inspector.queue_names():
        return name
    raise NotFound(
        f"No queue {name!r} in {dash.settings.full_namespace}: no topic holds its jobs, and no "
        "job of the dashboard's app names it."
    )


def parse_position_param(text: str) -> Position:
    try:
        return parse_position(text)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def cursor(request: Request) -> Position | None:
    text = request.query_params.get("after")
    return parse_position_param(text) if text else None


def page_size(request: Request) -> int:
    text = request.query_params.get("size") or str(PAGE_SIZES[0])
    if not text.isdigit() or int(text) not in PAGE_SIZES:
        raise BadRequest(f"size must be one of {', '.join(map(str, PAGE_SIZES))}, not {text!r}")
    return int(text)


def list_order(request: Request) -> Order:
    """The Dead page's order: newest first unless `order=oldest`."""
    text = request.query_params.get("order") or ORDERS[0]
    for order in ORDERS:
        if order == text:
            return order
    raise BadRequest(f"order must be one of {', '.join(ORDERS)}, not {text!r}")


def chosen_queue(request: Request, snapshot: Snapshot, counts: dict[str, int]) -> str | None:
    """The queue asked for; else the first with something to show; else the first."""
    asked = request.query_params.get("queue")
    if asked:
        return queue_param(asked)
    names = queue_names(snapshot)
    return next((name for name in names if counts.get(name)), names[0] if names else None)


def queue_names(snapshot: Snapshot) -> list[str]:
    return [stats.queue for stats in snapshot.queues]


def dead_letter_filter(params: Any) -> DeadLetterFilter:
    """The filters of the Dead page (and its actions), as `pulsarjobs dlq` takes them."""
    job_type = params.get("type") or None
    error = params.get("error") or None
    since = params.get("since") or None
    try:
        cutoff = parse_since(since, utc_now()) if since else None
    except ValueError as exc:
        raise BadRequest(f"since: {exc}") from None
    return DeadLetterFilter(job_type=job_type, error=error, since=cutoff, since_text=since)


def job_search(request: Request) -> JobSearch | None:
    """The list's search by type or argument text (`q`), if any."""
    text = (request.query_params.get("q") or "").strip()
    return JobSearch(text) if text else None


def searched_on(path: str, search: JobSearch | None) -> Context:
    """What the top bar's search box needs on a list page: where to search, what was asked."""
    return {"search_path": path, "search_text": search.text if search else ""}


def where_param(text: str) -> Where:
    for where in WHERE:
        if where == text:
            return where
    raise BadRequest(f"where must be one of {', '.join(WHERE)}, not {text!r}")


def series(points: list[Point]) -> dict[str, list[float]]:
    """The charts' data by column, as uPlot takes it."""
    return {
        "at": [point.at for point in points],
        "processed": [round(point.processed_per_second, 3) for point in points],
        "failed": [round(point.failed_per_second, 3) for point in points],
        "waiting": [point.waiting for point in points],
        "scheduled": [point.scheduled for point in points],
        "in_flight": [point.in_flight for point in points],
        "dead": [point.dead for point in points],
    }
