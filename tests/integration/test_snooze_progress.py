"""Progress and snooze on the real broker: progress seen by `pulsarjobs jobs show`, the Inspector
and Prometheus while a job runs and after it settled; snoozed jobs run again later with the same
attempt, never early, up to their max_snoozes."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pulsarjobs import App, Inspector, Snooze, WorkerMetrics, current_job
from pulsarjobs.broker.process import free_port
from pulsarjobs.worker.progress import last_progress
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, settings_env, wait_until, worker_in_thread
from tests.integration.test_cli import run
from tests.integration.test_metrics import scrape

SNOOZE_SECONDS = 1.5


@pytest.fixture
def app(broker: BrokerUnderTest) -> Iterator[App]:
    settings = dataclasses.replace(fresh_settings(broker), heartbeat_interval=0.5)
    created = App(settings)
    yield created
    created.close()


def jobs_show(app: App, job_id: str) -> dict[str, Any] | None:
    """`pulsarjobs jobs show ID --json` as a user runs it; None when it finds no such job."""
    env = settings_env(app.settings, Path(os.devnull))
    done = run("-m", "pulsarjobs", "jobs", "show", job_id, "--json", env=env)
    if done.returncode != 0:
        assert f"No job {job_id} is stored" in done.stderr, done.stderr
        return None
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def test_progress_is_seen_while_the_job_runs_and_after_it_settled(app: App) -> None:
    reported, finish = threading.Event(), threading.Event()

    @app.job
    def copy_files(count: int) -> None:
        job = current_job()
        for done in range(count):
            job.progress(done + 1, count, "copying")  # many reports: only the last one is seen
        reported.set()
        finish.wait(120)

    port = free_port()
    metrics = WorkerMetrics(port=port)
    with worker_in_thread(app, metrics=metrics), Inspector(app.settings) as inspector:
        job_id = copy_files.enqueue(1000)
        assert reported.wait(60)
        wait_until(lambda: (jobs_show(app, job_id) or {}).get("progress") is not None, 60, 0.5)
        shown = jobs_show(app, job_id)
        assert shown is not None
        assert (shown["ended_at"], shown["progress"]) == (
            None,
            {"done": 1000, "total": 1000, "message": "copying"},
        )
        labels = (("job_id", job_id), ("queue", "default"), ("type", "copy_files"))
        samples = scrape(port)
        assert samples["pulsarjobs_job_progress_done"][labels] == 1000
        assert samples["pulsarjobs_job_progress_total"][labels] == 1000

        finish.set()

        def ended() -> bool:
            found = last_progress(inspector.workers(), job_id)
            return found is not None and found[1].ended_at is not None

        wait_until(ended, 60, 0.5)
        shown = jobs_show(app, job_id)
        assert shown is not None and shown["ended_at"] is not None
        assert shown["progress"] == {"done": 1000, "total": 1000, "message": "copying"}
        assert labels not in scrape(port)["pulsarjobs_job_progress_done"]  # no longer running
    assert jobs_show(app, "no-such-job") is None


def snoozing_app(app: App, runs: list[dict[str, Any]], until: int, max_snoozes: int) -> Any:
    @app.job(max_attempts=1, max_snoozes=max_snoozes)
    def wait_for_stock(sku: str) -> None:
        job = current_job()
        due = job.run_at.timestamp() if job.run_at else None
        runs.append({"attempt": job.attempt, "snoozes": job.snoozes, "t": time.time(), "due": due})
        if job.snoozes < until:
            raise Snooze(SNOOZE_SECONDS)

    return wait_for_stock


def test_a_snoozing_job_runs_later_with_its_attempt_and_does_not_spend_retries(app: App) -> None:
    runs: list[dict[str, Any]] = []
    job = snoozing_app(app, runs, until=3, max_snoozes=10)  # max_attempts=1: a failure kills it
    with worker_in_thread(app) as worker:
        job_id = job.enqueue("SKU-1")
        wait_until(lambda: worker.stats.done == 1, 90, 0.2)
        stats = worker.stats
    assert [(run["attempt"], run["snoozes"]) for run in runs] == [(1, 0), (1, 1), (1, 2), (1, 3)]
    for earlier, later in itertools.pairwise(runs):
        assert later["due"] >= earlier["t"] + SNOOZE_SECONDS - 0.001  # due when snoozed for
        assert later["t"] >= later["due"]  # never started before it was due
    assert (stats.snoozed, stats.failed, stats.dead) == (3, 0, 0)
    assert stats.processed == 1
    with Inspector(app.settings) as inspector:
        assert inspector.find_dead_letters(job_id, "default") == []


def test_snoozing_past_max_snoozes_dead_letters_the_job_saying_so(app: App) -> None:
    runs: list[dict[str, Any]] = []
    job = snoozing_app(app, runs, until=sys.maxsize, max_snoozes=2)
    with worker_in_thread(app) as worker, Inspector(app.settings) as inspector:
        job_id = job.enqueue("SKU-2")
        wait_until(lambda: inspector.dead_count("default") == 1, 90, 0.5)
        [letter] = inspector.find_dead_letters(job_id, "default")
        stats = worker.stats
    assert letter.reason == "TooManySnoozes: snoozed 2 times already, its max_snoozes is 2"
    assert letter.envelope is not None
    assert (letter.envelope.attempt, letter.envelope.snoozes) == (1, 2)
    assert [run["snoozes"] for run in runs] == [0, 1, 2]
    assert (stats.snoozed, stats.dead) == (2, 1)


def test_an_ordered_job_that_snoozes_keeps_the_jobs_behind_it_waiting(app: App) -> None:
    ran: list[tuple[int, int]] = []

    @app.job
    def step(n: int) -> None:
        ran.append((n, current_job().snoozes))
        if n == 0 and current_job().snoozes == 0:
            raise Snooze(SNOOZE_SECONDS)

    app.enqueue_many([step.call(n).with_options(order_key="k") for n in range(3)])
    with worker_in_thread(app) as worker:
        wait_until(lambda: worker.stats.done == 3, 90, 0.2)
    assert ran == [(0, 0), (0, 1), (1, 0), (2, 0)]
