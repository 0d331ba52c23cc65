"""What the dashboard's buttons do, each through the same code as the command line: replay and
delete dead letters (replay.py, in a background task), quiet and stop workers (control.tell),
pause and resume queues (pauses.py), cancel a job or run it now (cancels.py) or every job that
carries a key (cancel_matching.py), and run now,
cancel or kill many scheduled or retrying jobs (bulk_jobs.py, in a background task), send a
signal to the durable jobs waiting on its key (app.signal, as `pulsarjobs signal` does).
Every one is a POST, also under /api/ (answering JSON there, and redirecting a browser
elsewhere), and works from a plain HTML form: htmx only enhances."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from pulsarjobs.dashboard.auth import COOKIE, safe_next
from pulsarjobs.dashboard.pages import render, with_notice
from pulsarjobs.dashboard.state import dashboard_of
from pulsarjobs.dashboard.tasks import TAB, Action, Busy, Work
from pulsarjobs.dashboard.views import (
    BadRequest,
    dead_letter_filter,
    existing_queue,
    parse_position_param,
    queue_param,
)
from pulsarjobs.dashboard.waits import signal_asked
from pulsarjobs.errors import NotFound
from pulsarjobs.operations import cancels, pauses
from pulsarjobs.operations import replay as moves
from pulsarjobs.operations.browse import Where
from pulsarjobs.operations.bulk_jobs import JOB_ACTIONS, JobAction, JobPick, JobTopic, act_on_jobs
from pulsarjobs.operations.cancel_matching import cancel_matching, check_keys
from pulsarjobs.operations.control import COMMANDS, Command, tell_each
from pulsarjobs.operations.dead_letters import DeadLetterFilter
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.transport.connection import client_errors
from pulsarjobs.wire.values import Unencodable

CONFIRM_SECONDS = 5.0  # how long a worker command waits for the worker to confirm
ACTIONS: dict[str, Action] = {"replay": "replay", "delete": "delete"}
JOB_ACTION: dict[str, JobAction] = {action: action for action in JOB_ACTIONS}
LISTS: dict[str, tuple[JobTopic, str]] = {  # the pages acting on many jobs: their topic, their jobs
    "scheduled": ("jobs", "scheduled jobs"),
    "retries": ("retry", "retrying jobs"),
}
WORKER_COMMANDS: dict[str, Command] = {command: command for command in COMMANDS}


def routes() -> list[Route]:
    found = [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", log_in, methods=["POST"]),
        Route("/logout", log_out, methods=["POST"]),
    ]
    for prefix in ("", "/api"):
        found += [
            Route(f"{prefix}/dead/{{action}}", dead_letters, methods=["POST"]),
            *[
                Route(f"{prefix}/{listed}/{{action}}", acting_on(*LISTS[listed]), methods=["POST"])
                for listed in LISTS
            ],
            Route(f"{prefix}/workers/{{command}}", command_worker, methods=["POST"]),
            Route(f"{prefix}/queues/{{switch}}", switch_queue, methods=["POST"]),
            Route(f"{prefix}/jobs/cancel", cancel_job, methods=["POST"]),
            Route(f"{prefix}/jobs/cancel-matching", cancel_matching_jobs, methods=["POST"]),
            Route(f"{prefix}/jobs/run-now", run_job_now, methods=["POST"]),
            Route(f"{prefix}/signals/send", send_signal, methods=["POST"]),
        ]
    return found


def answer(
    request: Request, body: dict[str, Any], to: str, notice: str, status: int = 200
) -> Response:
    """JSON for the API; for a browser, the next page with a notice."""
    if request.url.path.startswith("/api/"):
        return JSONResponse(body, status_code=status)
    return with_notice(RedirectResponse(to, status_code=303), notice)


# -- dead letters ------------------------------------------------------------------------------


async def dead_letters(request: Request) -> Response:
    action = ACTIONS.get(request.path_params["action"])
    if action is None:
        raise NotFound(f"No action {request.path_params['action']!r}: use replay or delete.")
    form = await request.form()
    queue = queue_param(str(form.get("queue") or ""))
    matching, picks = picked(form)
    dash = dashboard_of(request)
    total = await run_in_threadpool(dash.inspector.dead_count, queue)

    def work(inspector: Inspector, progress: moves.Progress) -> moves.Moved:
        move = moves.replay if action == "replay" else moves.purge
        return move(inspector, queue, matching, progress=progress)

    return started(request, action, queue, "dead", picks, total, work)


def started(
    request: Request, action: Action, queue: str, where: Where, picks: str, total: int, work: Work
) -> Response:
    """A background task begun (202), or 409 while another acts on the same topic."""
    dash = dashboard_of(request)
    try:
        task = dash.tasks.start(action, queue, where, picks, total, work)
    except Busy as exc:
        return answer(request, {"error": str(exc)}, f"/{TAB[where]}?queue={queue}", str(exc), 409)
    body = {"task": task.id, "url": f"/api/tasks/{task.id}"}
    return answer(request, body, f"/tasks/{task.id}", f"Started: {action} {picks}.", 202)


def picked(form: FormData) -> tuple[DeadLetterFilter, str]:
    """The dead letters a form names, and how to say which: one (`one`), those selected
    (`scope=selected`, `ids`), some jobs (`job_id`), or all that match the filters
    (`scope=matching`, `type`, `error`, `since`)."""
    if one := form.get("one"):
        parse_position_param(str(one))
        return DeadLetterFilter(message_ids=frozenset([str(one)])), f"dead letter {one}"
    if job_ids := [str(job_id) for job_id in form.getlist("job_id") if job_id]:
        return DeadLetterFilter(
            job_ids=frozenset(job_ids)
        ), f"the dead letters of {len(job_ids)} job(s)"
    scope = form.get("scope")
    if scope == "selected":
        ids = [str(position) for position in form.getlist("ids")]
        if not ids:
            raise BadRequest("No dead letter is selected: tick some first.")
        for position in ids:
            parse_position_param(position)
        return DeadLetterFilter(message_ids=frozenset(ids)), f"{len(ids)} selected dead letter(s)"
    if scope == "matching":
        matching = dead_letter_filter(form)
        return matching, "all dead letters" + filter_words(matching)
    raise BadRequest("Say which dead letters: one=POSITION, job_id=ID, scope=selected or matching.")


def filter_words(matching: DeadLetterFilter) -> str:
    words = [
        f"{label} {value!r}"
        for label, value in (
            ("of type", matching.job_type),
            ("with error", matching.error),
            ("since", matching.since_text),
        )
        if value
    ]
    return (" " + ", ".join(words)) if words else ""


# -- scheduled and retrying jobs --------------------------------------------------------------


def acting_on(where: JobTopic, jobs: str) -> Callable[[Request], Awaitable[Response]]:
    """The buttons of the Scheduled or Retries page, for the `jobs` on the topic `where`."""

    async def many_jobs(request: Request) -> Response:
        """Run now, cancel or kill the jobs ticked (`scope=selected`, `ids=POSITION`
        repeated), or every one the page lists (`scope=matching`)."""
        action = JOB_ACTION.get(request.path_params["action"])
        if action is None:
            raise NotFound(
                f"No action {request.path_params['action']!r}: use {', '.join(JOB_ACTIONS)}."
            )
        form = await request.form()
        queue = queue_param(str(form.get("queue") or ""))
        pick, picks = jobs_picked(form, where, jobs)
        dash = dashboard_of(request)
        total = await run_in_threadpool(dash.browser.held, queue, where)

        def work(inspector: Inspector, progress: moves.Progress) -> moves.Moved:
            return act_on_jobs(inspector, queue, action, pick, progress=progress)

        return started(request, action, queue, where, picks, total, work)

    return many_jobs


def jobs_picked(form: FormData, where: JobTopic, jobs: str) -> tuple[JobPick, str]:
    """The jobs a form names, and how to say which: those ticked (`scope=selected`, `ids`), or
    every one the page lists (`scope=matching`)."""
    scope = form.get("scope")
    if scope == "selected":
        ids = [str(position) for position in form.getlist("ids")]
        if not ids:
            raise BadRequest("No job is selected: tick some first.")
        for position in ids:
            parse_position_param(position)
        return JobPick(where, frozenset(ids)), f"{len(ids)} selected {jobs}"
    if scope == "matching":
        return JobPick(where), f"all {jobs}"
    raise BadRequest("Say which jobs: scope=selected with ids=POSITION, or scope=matching.")


# -- workers -----------------------------------------------------------------------------------


async def command_worker(request: Request) -> Response:
    """Quiet or stop one worker (`worker=`), or every live worker on a host (`host=`)."""
    command = WORKER_COMMANDS.get(request.path_params["command"])
    if command is None:
        raise NotFound(f"No worker command: use {' or '.join(COMMANDS)}.")
    form = await request.form()
    if host := str(form.get("host") or ""):
        states = await run_in_threadpool(tell_host, request, host, command)
        confirmed = {worker: state for worker, state in states.items() if state is not None}
        body: dict[str, object] = {"host": host, "command": command, "workers": states}
        notice = (f"{len(confirmed)} of {len(states)} workers on {host} confirmed {command} "
                  f"within {CONFIRM_SECONDS:g} s.")  # fmt: skip
        return answer(request, body, "/workers", notice)
    worker = str(form.get("worker") or "")
    state = await run_in_threadpool(tell_workers, request, [worker], command)
    body = {"worker": worker, "command": command, "confirmed": state[worker] is not None,
            "state": state[worker]}  # fmt: skip
    if state[worker] is None:
        notice = f"Sent {command} to {worker}; it has not confirmed within {CONFIRM_SECONDS:g} s."
    else:
        notice = f"Worker {worker} is {state[worker]}."
    return answer(request, body, "/workers", notice)


def tell_host(request: Request, host: str, command: Command) -> dict[str, str | None]:
    workers = dashboard_of(request).inspector.workers(everyone=True)
    live = [w.worker for w in workers if w.host == host and w.state in ("running", "quiet")]
    if not live:
        raise BadRequest(f"No worker on {host} takes a command.")
    return tell_workers(request, live, command)


def tell_workers(request: Request, workers: list[str], command: Command) -> dict[str, str | None]:
    """The state each worker confirms, or None when it did not in time."""
    dash = dashboard_of(request)
    inspector = dash.inspector
    known = {status.worker: status for status in inspector.workers(everyone=True)}
    for worker in workers:
        if (target := known.get(worker)) is None:
            raise NotFound(f"No worker {worker!r}.")
        if target.state in ("gone", "stopped"):
            raise BadRequest(f"Worker {worker} is {target.state}: it takes no command.")
    with client_errors(dash.settings.service_url, f"telling {', '.join(workers)} to {command}"):
        beats = tell_each(inspector.client, dash.settings, workers, command, CONFIRM_SECONDS)
    return {worker: beat.state if beat is not None else None for worker, beat in beats.items()}


# -- queues and jobs ---------------------------------------------------------------------------


async def switch_queue(request: Request) -> Response:
    switch = request.path_params["switch"]
    if switch not in ("pause", "resume"):
        raise NotFound(f"No queue action {switch!r}: use pause or resume.")
    form = await request.form()
    dash = dashboard_of(request)
    queue = await run_in_threadpool(existing_queue, dash, str(form.get("queue") or ""))
    change = pauses.pause if switch == "pause" else pauses.resume
    await run_in_threadpool(change, dash.inspector.connection, queue)
    dash.snapshots.forget()  # the next page shows the change
    done = "paused: workers take none of its jobs" if switch == "pause" else "resumed"
    body = {"queue": queue, "paused": switch == "pause"}
    return answer(request, body, back(form, "/queues"), f"Queue {queue} is {done}.")


async def cancel_job(request: Request) -> Response:
    form = await request.form()
    job_id = str(form.get("job_id") or "").strip()
    if not job_id:
        raise BadRequest("Say which job to cancel: job_id=ID.")
    connection = dashboard_of(request).inspector.connection
    mark = await run_in_threadpool(cancels.cancel, connection, job_id)
    body = {"job_id": job_id, "cancelled_at": mark.cancelled_at.isoformat()}
    notice = f"Job {job_id} is cancelled: it will not run (a running one stops or is discarded)."
    return answer(request, body, back(form, "/scheduled"), notice)


async def cancel_matching_jobs(request: Request) -> Response:
    """Cancel every waiting, scheduled or retrying job whose `key` (an envelope attribute, e.g.
    unique_key) is `value`, in `queue` or in every queue (cancel_matching.py); says how many."""
    form = await request.form()
    name, value = str(form.get("key") or ""), str(form.get("value") or "").strip()
    queue = str(form.get("queue") or "").strip() or None
    try:
        check_keys({name: value})
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    inspector = dashboard_of(request).inspector
    queues = None if queue is None else [queue_param(queue)]
    count = await run_in_threadpool(cancel_matching, inspector, {name: value}, queues)
    dashboard_of(request).snapshots.forget()
    notice = f"Cancelled {count} jobs with {name} {value!r} in {queue or 'every queue'}."
    return answer(request, {"cancelled": count}, back(form, "/queues"), notice)


async def run_job_now(request: Request) -> Response:
    form = await request.form()
    queue = queue_param(str(form.get("queue") or ""))
    position = str(form.get("position") or "")
    parse_position_param(position)
    dash = dashboard_of(request)
    job_id = await run_in_threadpool(cancels.run_now, dash.inspector, queue, position)
    dash.snapshots.forget()
    notice = f"Job {job_id} runs now: a copy is enqueued, due now; the waiting one is cancelled."
    return answer(request, {"job_id": job_id}, back(form, "/scheduled"), notice)


async def send_signal(request: Request) -> Response:
    form = await request.form()
    to = back(form, "/waiting")
    try:
        asked = signal_asked(form)
        dash = dashboard_of(request)
        resumed = await run_in_threadpool(dash.signal, asked.key, asked.payload, asked.keep)
    except (BadRequest, Unencodable) as exc:  # said on the page it came from, not a crash
        error = str(exc) if isinstance(exc, BadRequest) else f"The payload cannot be sent: {exc}."
        return answer(request, {"error": error}, to, f"No signal sent. {error}", 400)
    body = {"key": asked.key, "resumed": resumed, "kept_for_seconds": asked.keep.total_seconds()}
    jobs = "job" if resumed == 1 else "jobs"
    notice = (
        f"Signal {asked.key!r} sent: {resumed} waiting {jobs} resumed; kept for "
        f"{asked.keep_text} for jobs that start waiting on it."
    )
    return answer(request, body, to, notice)


def back(form: FormData, default: str) -> str:
    """The page the form came from, when it says (`back`), to return to."""
    return safe_next(str(form.get("back") or default))


# -- logging in --------------------------------------------------------------------------------


def login_page(request: Request) -> Response:
    context = {"next": safe_next(request.query_params.get("next")), "failed": False}
    context["failed"] = request.query_params.get("failed") == "1"
    return render(request, "login", context, tab="login")


async def log_in(request: Request) -> Response:
    form = await request.form()
    dash = dashboard_of(request)
    target = safe_next(str(form.get("next") or "/"))
    if not dash.secret.accepts(str(form.get("token") or "")):
        return render(request, "login", {"next": target, "failed": True}, "login", 401)
    return dash.secret.log_in(RedirectResponse(target, status_code=303))


def log_out(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response
