"""`pulsarjobs dlq list | show | replay | purge`: dead letters."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pulsarjobs.cli.context import inspecting
from pulsarjobs.cli.output import AsJson, fail, print_json, print_table, reports_errors
from pulsarjobs.clock import utc_now
from pulsarjobs.operations import replay as moves
from pulsarjobs.operations.dead_letters import DeadLetter, DeadLetterFilter
from pulsarjobs.operations.durations import parse_since
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.operations.jsonable import jsonable
from pulsarjobs.transport.backlog_newest import ORDERS, Order

app = typer.Typer(no_args_is_help=True, help="Dead letters: list, show, replay, purge.")
console = Console()
progress_console = Console(stderr=True)

Queue = Annotated[str, typer.Argument(help="The queue whose dead letters to handle.")]
JobType = Annotated[str | None, typer.Option("--type", help="Only jobs of this type.")]
ErrorText = Annotated[
    str | None, typer.Option("--error", help="Only jobs whose error or reason contains this.")
]
Since = Annotated[
    str | None,
    typer.Option(help="Only jobs dead-lettered since then: 2h, 1d, or an ISO time."),
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Count what would be done; change nothing.")
]


def picking(job_type: str | None, error: str | None, since: str | None) -> DeadLetterFilter:
    try:
        cutoff = parse_since(since, utc_now()) if since else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None
    return DeadLetterFilter(job_type=job_type, error=error, since=cutoff, since_text=since)


def listing_order(text: str) -> Order:
    for order in ORDERS:
        if order == text:
            return order
    raise typer.BadParameter(f"use {' or '.join(ORDERS)}, not {text!r}", param_hint="--order")


@app.command("list")
@reports_errors
def list_letters(
    ctx: typer.Context,
    queue: Queue,
    job_type: JobType = None,
    error: ErrorText = None,
    since: Since = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 50,
    order: Annotated[
        str, typer.Option(help="newest (the latest dead first) or oldest (the first dead first).")
    ] = "newest",
    as_json: AsJson = False,
) -> None:
    """Dead letters of a queue, newest first (or oldest), with the error each died of."""
    matching = picking(job_type, error, since)
    listed = listing_order(order)
    with inspecting(ctx) as inspector:
        letters = inspector.dead_letters(queue, matching, limit, listed)
        total = inspector.dead_count(queue)
    if as_json:
        print_json(letters)
        return
    rows = [
        (
            letter.job_id,
            letter.job_type or "-",
            str(letter.attempts or "-"),
            letter.dead_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            letter.error or letter.reason,
        )
        for letter in letters
    ]
    title = f"Dead letters of {queue}: {len(letters)} shown of {total}"
    columns = ("job id", "type", "attempts", "dead since", "error")
    print_table(console, title, columns, rows, wraps={"dead since", "error"})


@app.command()
@reports_errors
def show(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    queue: Annotated[str | None, typer.Option(help="Look in this queue only.")] = None,
    as_json: AsJson = False,
) -> None:
    """Everything about a dead job: arguments, attempts, reason, error and traceback."""
    with inspecting(ctx) as inspector:
        letters = inspector.find_dead_letters(job_id, queue)
    if not letters:
        fail(f"No dead letter of job {job_id}{f' in queue {queue}' if queue else ''}.")
    if as_json:
        print_json(letters)
        return
    for letter in letters:
        print_dead_letter(letter)


def print_dead_letter(letter: DeadLetter) -> None:
    envelope = letter.envelope
    lines = [
        ("job", f"{letter.job_id} ({letter.job_type or 'unknown type'})"),
        ("dead since", letter.dead_at.astimezone().isoformat(timespec="seconds")),
        ("reason", letter.reason),
        ("error", letter.error or "-"),
        ("from", letter.origin_topic or "-"),
    ]
    if envelope is not None:
        lines += [
            ("queue", envelope.queue),
            ("arguments", f"args={list(envelope.args)!r} kwargs={dict(envelope.kwargs)!r}"),
            ("attempts", f"{envelope.attempt} of {envelope.retry.max_attempts}"),
            ("created", envelope.created_at.astimezone().isoformat(timespec="seconds")),
        ]
    else:
        lines.append(("payload", f"{len(letter.raw or b'')} bytes that are no job envelope"))
    for label, value in lines:
        console.print(f"[bold]{label:>11}[/]  {value}", highlight=False, soft_wrap=True)
    if envelope is not None and envelope.last_error is not None and envelope.last_error.traceback:
        console.print(envelope.last_error.traceback.rstrip(), highlight=False, markup=False)
    console.print()


@app.command()
@reports_errors
def replay(
    ctx: typer.Context,
    queue: Queue,
    job_type: JobType = None,
    error: ErrorText = None,
    since: Since = None,
    to_queue: Annotated[
        str | None, typer.Option(help="Send them to this queue instead of their own.")
    ] = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
) -> None:
    """Send dead jobs back to work as new (attempt 1). Safe to interrupt: run the same command
    again to finish, and no job is replayed twice."""
    matching = picking(job_type, error, since)
    with inspecting(ctx) as inspector, progress_bar(inspector, queue, "replaying") as advance:
        moved = moves.replay(
            inspector, queue, matching, to_queue=to_queue, dry_run=dry_run, progress=advance
        )
    report(moved, "replayed", to_queue or queue, dry_run, as_json)


@app.command()
@reports_errors
def purge(
    ctx: typer.Context,
    queue: Queue,
    job_type: JobType = None,
    error: ErrorText = None,
    since: Since = None,
    dry_run: DryRun = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: AsJson = False,
) -> None:
    """Delete dead letters for good."""
    matching = picking(job_type, error, since)
    if not (yes or dry_run):
        typer.confirm(f"Delete the matching dead letters of {queue} for good?", abort=True)
    with inspecting(ctx) as inspector, progress_bar(inspector, queue, "purging") as advance:
        moved = moves.purge(inspector, queue, matching, dry_run=dry_run, progress=advance)
    report(moved, "purged", queue, dry_run, as_json)


@contextmanager
def progress_bar(inspector: Inspector, queue: str, doing: str) -> Iterator[moves.Progress]:
    """A bar over the dead letters read (on stderr, so stdout keeps the result)."""
    columns = (
        TextColumn(f"{doing} {queue}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    total = inspector.dead_count(queue)  # before the bar shows: a failure stays one line
    quiet = not progress_console.is_terminal  # no bar in logs and pipes
    with Progress(*columns, console=progress_console, transient=True, disable=quiet) as bar:
        task = bar.add_task(doing, total=total)
        try:
            yield lambda read: bar.advance(task, read)
        except KeyboardInterrupt:
            fail("Interrupted. Run the same command again to finish; no job is handled twice.")


def report(moved: moves.Moved, verb: str, queue: str, dry_run: bool, as_json: bool) -> None:
    if as_json:
        print_json({"dry_run": dry_run, **jsonable(moved)})
        return
    would = moved.matched - moved.skipped if verb == "replayed" else moved.matched
    if dry_run:
        console.print(
            f"{moved.matched} dead letters match; {would} would be {verb}.", highlight=False
        )
    else:
        done = f"{moved.moved + moved.resumed} {verb}"
        if verb == "replayed":
            done += f" to {queue}"
        if moved.resumed:
            done += f" ({moved.resumed} of them by the interrupted run before)"
        console.print(f"{done}.", highlight=False)
    if moved.skipped:
        console.print(
            f"{moved.skipped} stay in the dead letters: no job inside (see dlq show).",
            highlight=False,
        )
