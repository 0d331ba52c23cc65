"""The README's demo: enqueue the example jobs, run a worker until each has settled, report.

Needs a broker: `pulsarjobs broker start` (the run command does it).
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

from rich.console import Console
from rich.table import Table

from examples.jobs import app, charge_card, send_reminder, send_welcome_email, sync_legacy_inventory
from pulsarjobs import Envelope, JobError, Middleware, Worker
from pulsarjobs.logs import configure_logging
from pulsarjobs.transport.topics import topics_for

console = Console()


class Journal(Middleware):
    """Remembers what happened to each job, for the report."""

    def __init__(self) -> None:
        self.events: dict[str, list[str]] = {}
        self.settled: set[str] = set()
        self.started = time.monotonic()

    def note(self, envelope: Envelope, text: str) -> None:
        stamp = f"{time.monotonic() - self.started:5.1f}s"
        self.events.setdefault(envelope.id, []).append(f"{stamp} {text}")

    def after_process(self, envelope: Envelope, duration: float) -> None:
        self.note(envelope, f"attempt {envelope.attempt} succeeded")
        self.settled.add(envelope.id)

    def on_failure(self, envelope: Envelope, error: JobError, retry_in: float | None) -> None:
        then = f"retry in {retry_in:.1f}s" if retry_in is not None else "no retries left"
        self.note(envelope, f"attempt {envelope.attempt} failed: {error.message}; {then}")

    def on_dead(self, envelope: Envelope, reason: str) -> None:
        self.note(envelope, "moved to the dead-letter topic")
        self.settled.add(envelope.id)


def main() -> None:
    configure_logging("console", "error")
    journal = Journal()
    app.hooks.add(journal)
    jobs = {
        send_welcome_email.enqueue("ada@example.com"): "send_welcome_email: now",
        app.enqueue(send_reminder.call("ada@example.com", "the meetup"), in_=timedelta(seconds=3)):
            "send_reminder: in 3 s",
        charge_card.enqueue("A-1001", 4200): "charge_card: fails twice, then succeeds",
        sync_legacy_inventory.enqueue("berlin"): "sync_legacy_inventory: always fails",
    }  # fmt: skip
    console.print(f"Enqueued {len(jobs)} jobs on {app.settings.service_url}; starting a worker.")
    worker = Worker(app, "default", concurrency=4)
    thread = threading.Thread(target=lambda: asyncio.run(worker.run_async()))
    thread.start()
    deadline = time.monotonic() + 60
    while not journal.settled >= set(jobs) and time.monotonic() < deadline:
        time.sleep(0.1)
    worker.stop()
    thread.join()
    report(jobs, journal)


def report(jobs: dict[str, str], journal: Journal) -> None:
    table = Table(title="What happened")
    table.add_column("job")
    table.add_column("timeline")
    for job_id, label in jobs.items():
        table.add_row(label, "\n".join(journal.events.get(job_id, ["did not settle in 60 s"])))
    console.print(table)
    dead = topics_for(app.settings, "default").dead
    console.print(f"Dead letters are kept on {dead}.")
    console.print("See them, replay them: .venv/bin/pulsarjobs dashboard (a web page on :7420)")
    console.print("The broker keeps running; stop it with: .venv/bin/pulsarjobs broker stop")
    if not journal.settled >= set(jobs):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
