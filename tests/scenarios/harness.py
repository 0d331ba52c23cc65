"""One scenario, two pipelines: the in-memory TestRunner and a real Worker on a real broker.

A scenario declares its jobs on `driver.app`, has them record their runs in `driver.tally`,
enqueues, calls `driver.drain(settled=N)` and reads the `Report`. Nothing in a report depends
on how runs interleave: which jobs ran and how often (with each run's attempt and note), each
job's final verdict, per-key order of completion, the most jobs running at once.

- `InMemory`: the app under a `TestRunner` (virtual clock). `drain` is `run_all()`; verdicts are
  the last `Outcome` of each job id in `runner.outcomes`.
- `OnBroker`: the app on a namespace of its own of the real broker. `drain` starts a `Worker`
  in a thread, waits until the worker's counters say `settled` jobs are over (done, dead,
  expired or cancelled), and stops it gracefully, so that every run it started has settled.
  Verdicts come from a `Middleware` on the app: `after_process` is done, `on_failure` with a
  delay a retry, `on_dead` dead, `on_expired` expired. A cancelled job calls no hook: the
  enqueued jobs left without a verdict are cancelled when the worker counted exactly that many
  cancels (else they are left without one, and the scenario fails on it). An async job
  cancelled while it runs is stopped and calls none either; a sync one would read as done: no
  scenario cancels one.

Dead letters ("Type: message" of the last error) come from `runner.dead` in memory, from the
dead-letter topic (`Inspector.find_dead_letters`) on the broker. Both drivers run the jobs in
the test's own process, so a job records straight into its driver's `Tally`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from pulsarjobs import (
    App,
    CurrentJob,
    Envelope,
    Inspector,
    JobError,
    Middleware,
    Settings,
    Verdict,
    current_job,
)
from pulsarjobs.testing import TestRunner
from tests.integration.helpers import wait_until, worker_in_thread

DRAIN_TIMEOUT_S = 90.0  # generous: the machine is shared, and a fresh namespace starts slowly
OVER = ("done", "dead", "expired", "cancelled")  # verdicts that end a job


class NoProcessToKill(Exception):
    """The driver cannot make the process running a job die."""


@dataclass(frozen=True)
class Run:
    """One run that reached a job's handler, as the job recorded it."""

    job_id: str
    type: str
    attempt: int
    note: Any = None


class Tally:
    """What the jobs record as they run; sync jobs run on several threads at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.runs: list[Run] = []
        self.finished: dict[str, list[Any]] = defaultdict(list)  # by key, in order
        self.most_running = 0
        self._running = 0
        self._started = False
        self._together = threading.Event()

    def ran(self, note: Any = None) -> CurrentJob:
        """Record a run of the job calling this, and return it (`current_job()`)."""
        job = current_job()
        with self._lock:
            self.runs.append(Run(job.id, job.type, job.attempt, note))
        return job

    def finish(self, key: str, item: Any) -> None:
        """Record that `item` of `key` finished: the key's order of completion."""
        with self._lock:
            self.finished[key].append(item)

    @contextmanager
    def running(self, partner_within: float = 0.0) -> Iterator[None]:
        """Count the jobs inside at once. With `partner_within`, the first job to come in waits
        up to that many seconds for a second one, so that two jobs allowed to run together do,
        however slowly the second starts (and the most at once does not depend on timing)."""
        with self._lock:
            self._running += 1
            self.most_running = max(self.most_running, self._running)
            if self._running >= 2:
                self._together.set()
            first, self._started = not self._started, True
        try:
            if first and partner_within:
                self._together.wait(partner_within)
            yield
        finally:
            with self._lock:
                self._running -= 1


@dataclass(frozen=True)
class Report:
    sequence: list[Run]  # every run, in the order they started
    verdicts: dict[str, str]  # job id -> its final verdict ("done", "dead", ...)
    order: dict[str, list[Any]]  # key -> items in the order they finished (Tally.finish)
    most_running: int  # the most jobs inside Tally.running at once
    dead_letters: dict[str, str] = field(default_factory=dict)  # job id -> "Type: message"

    def attempts(self, job_id: str) -> list[int]:
        return [run.attempt for run in self.sequence if run.job_id == job_id]

    def notes(self, job_type: str) -> list[Any]:
        return [run.note for run in self.sequence if run.type == job_type]

    def runs_by_id(self) -> Counter[str]:
        return Counter(run.job_id for run in self.sequence)


class Driver:
    name: str
    app: App
    tally: Tally

    def pass_time(self, seconds: float) -> None:
        """Let time pass before jobs are drained (no worker takes them meanwhile)."""
        raise NotImplementedError

    def drain(self, settled: int) -> Report:
        """Run the jobs until at least `settled` are over (done, dead, expired, cancelled)."""
        raise NotImplementedError

    def kill_process_in(self, job_type: str) -> None:
        """Have the process running the first run of `job_type` die once that run is over,
        before the job is acknowledged."""
        raise NoProcessToKill(
            f"{self.name}: a job's process cannot be made to die here (the jobs run in the "
            f"test's own process)"
        )

    def close(self) -> None:
        raise NotImplementedError


class InMemory(Driver):
    name = "in memory"

    def __init__(self) -> None:
        self.app = App(Settings())
        self.tally = Tally()
        self.runner = TestRunner(self.app, concurrency=10)  # as a worker runs by default
        self.runner.__enter__()

    def pass_time(self, seconds: float) -> None:
        self.runner.advance(timedelta(seconds=seconds))

    def kill_process_in(self, job_type: str) -> None:
        self.runner.crash_process_in(job_type)

    def drain(self, settled: int) -> Report:
        self.runner.run_all()
        # A superseded copy of a durable job (run out to its timeout here: the clock is virtual)
        # says nothing of its job, which another copy carried on.
        verdicts = {outcome.envelope.id: str(outcome.kind) for outcome in self.runner.outcomes
                    if outcome.kind is not Verdict.SUPERSEDED}  # fmt: skip
        over = sum(verdict in OVER for verdict in verdicts.values())
        assert over >= settled, f"{over} jobs are over after run_all(), {settled} expected"
        dead_letters = {
            dead.id: f"{dead.last_error.type}: {dead.last_error.message}"
            for dead in self.runner.dead
            if dead.last_error is not None
        }
        return report(self.tally, verdicts, dead_letters)

    def close(self) -> None:
        self.runner.__exit__(None, None, None)
        self.app.close()


class Verdicts(Middleware):
    """Each job's last verdict, as the hooks tell it; and the jobs enqueued."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.enqueued: list[str] = []
        self.last: dict[str, str] = {}

    def _say(self, job_id: str, verdict: str) -> None:
        with self._lock:
            self.last[job_id] = verdict

    def after_enqueue(self, envelope: Envelope) -> None:
        with self._lock:
            self.enqueued.append(envelope.id)

    def after_process(self, envelope: Envelope, duration: float) -> None:
        self._say(envelope.id, "done")

    def on_failure(self, envelope: Envelope, error: JobError, retry_in: float | None) -> None:
        if retry_in is not None:
            self._say(envelope.id, "retry")

    def on_dead(self, envelope: Envelope, reason: str) -> None:
        self._say(envelope.id, "dead")

    def on_expired(self, envelope: Envelope) -> None:
        self._say(envelope.id, "expired")


class OnBroker(Driver):
    name = "on the broker"

    def __init__(self, settings: Settings) -> None:
        self.verdicts = Verdicts()
        self.app = App(settings, middleware=[self.verdicts])
        self.tally = Tally()

    def pass_time(self, seconds: float) -> None:
        time.sleep(seconds)

    def drain(self, settled: int) -> Report:
        with worker_in_thread(self.app) as worker:  # stopped gracefully: its runs settle
            stats = worker.stats
            try:
                wait_until(lambda: sum(getattr(stats, v) for v in OVER) >= settled,
                           DRAIN_TIMEOUT_S, interval=0.05)  # fmt: skip
            except AssertionError:
                raise AssertionError(
                    f"{settled} jobs were to be over within {DRAIN_TIMEOUT_S} s; the worker "
                    f"counted {stats.as_dict()}"
                ) from None
        verdicts = dict(self.verdicts.last)
        unsaid = [job_id for job_id in self.verdicts.enqueued if job_id not in verdicts]
        if unsaid and len(unsaid) == stats.cancelled:
            verdicts.update(dict.fromkeys(unsaid, "cancelled"))
        return report(self.tally, verdicts, self._dead_letters(verdicts))

    def _dead_letters(self, verdicts: dict[str, str]) -> dict[str, str]:
        dead = [job_id for job_id, verdict in verdicts.items() if verdict == "dead"]
        if not dead:
            return {}
        with Inspector(self.app.settings) as inspector:
            return {
                letter.job_id: letter.error
                for job_id in dead
                for letter in inspector.find_dead_letters(job_id, "default")
            }

    def close(self) -> None:
        self.app.close()


def report(tally: Tally, verdicts: dict[str, str], dead_letters: dict[str, str]) -> Report:
    return Report(
        sequence=list(tally.runs),
        verdicts=verdicts,
        order={key: list(items) for key, items in tally.finished.items()},
        most_running=tally.most_running,
        dead_letters=dead_letters,
    )


def on_both(
    memory: pytest.MarkDecorator | None = None, broker: pytest.MarkDecorator | None = None
) -> pytest.MarkDecorator:
    """Run a scenario on both drivers (the `driver` fixture); `memory=`/`broker=` mark one of
    them, e.g. a strict xfail that names where today's TestRunner answers otherwise."""
    return pytest.mark.parametrize(
        "driver",
        [
            pytest.param("memory", marks=[memory] if memory else [], id="memory"),
            pytest.param(
                "broker", marks=[pytest.mark.broker, *([broker] if broker else [])], id="broker"
            ),
        ],
        indirect=True,
    )


def diverges(reason: str) -> pytest.MarkDecorator:
    """Today's answer on this driver differs from the other's: strict, so that the fix makes
    the test fail until the mark is removed."""
    return pytest.mark.xfail(strict=True, reason=reason)
