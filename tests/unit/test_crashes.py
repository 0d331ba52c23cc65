"""The crash ledger without a broker: a killed process's running jobs are counted, and what
becomes of a job with crashes before it runs again."""

from __future__ import annotations

import multiprocessing
import os
import time
from datetime import timedelta

import pytest

from pulsarjobs import App, Settings
from pulsarjobs.clock import utc_now
from pulsarjobs.wire.envelope import Envelope
from pulsarjobs.worker._running import CurrentRuns
from pulsarjobs.worker.crashes import (
    CRASHES_BEFORE_DEAD,
    RECOUNT_AFTER_S,
    CrashGuard,
    CrashLedger,
    ledger_key,
)
from pulsarjobs.worker.judge import Judge
from pulsarjobs.worker.steps import AfterCrashes

LONG_ID = "x" * 300


def run_then_die(directory: str) -> None:
    guard = CrashGuard(directory, slots=4)
    guard.start()
    guard.ended(guard.started("finished"))
    guard.started("job-1")
    guard.started(LONG_ID)
    os._exit(1)  # killed mid-run: nothing is cleaned up


def crash_once(ledger: CrashLedger) -> list[str]:
    child = multiprocessing.get_context("fork").Process(
        target=run_then_die, args=(ledger.directory,)
    )
    child.start()
    child.join(30)
    assert child.exitcode == 1 and child.pid is not None
    return ledger.process_died(child.pid)


def test_the_jobs_a_killed_process_was_running_are_counted_and_its_siblings_learn_it() -> None:
    now = [time.time()]
    ledger = CrashLedger(clock=lambda: now[0])
    sibling = CrashGuard(ledger.directory, slots=4)
    sibling.start()
    try:
        assert sorted(crash_once(ledger)) == sorted(["job-1", ledger_key(LONG_ID)])
        now[0] += RECOUNT_AFTER_S
        crash_once(ledger)
        deadline = time.monotonic() + 10
        while (sibling.of("job-1") or (0,))[0] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the sibling learns each death in turn, from the ledger's file
        crashes = sibling.of("job-1")
        assert crashes == (2, now[0])
        assert sibling.of(LONG_ID) == crashes
        assert sibling.of("finished") is None  # its run ended before the death
        assert CrashGuard(ledger.directory, slots=1).of("job-1") is None  # loaded on start only
    finally:
        sibling.stop()
        ledger.close()


def test_a_death_passed_on_to_a_sibling_before_it_could_know_counts_once() -> None:
    """The broker gives a dead process's jobs to a sibling at once; if they kill it too before
    it read the counts, that is the first death again, not a second one for each of them."""
    first_death = time.time()
    now = [first_death]
    ledger = CrashLedger(clock=lambda: now[0])
    reader = CrashGuard(ledger.directory, slots=1)
    try:
        crash_once(ledger)
        now[0] = first_death + RECOUNT_AFTER_S / 10  # a run by a sibling that could not know yet
        assert sorted(crash_once(ledger)) == sorted(["job-1", ledger_key(LONG_ID)])
        reader.start()
        assert reader.of("job-1") == (1, first_death)
    finally:
        reader.stop()
        ledger.close()


def test_a_process_that_died_before_running_anything_counts_nothing() -> None:
    ledger = CrashLedger()
    try:
        assert ledger.process_died(999_999_999) == []
    finally:
        ledger.close()


@pytest.fixture
def after_crashes() -> AfterCrashes:
    app = App(Settings())

    @app.job
    def fine() -> None:
        pass

    ledger = CrashLedger()
    guard = CrashGuard(ledger.directory, slots=2)
    ledger.close()  # the counts are set by hand below
    return AfterCrashes(Judge(app, "w", utc_now, CurrentRuns()), guard)


def outcome_with(step: AfterCrashes, deaths: int, deferred: bool = False) -> tuple[str, str]:
    """The pipeline's verdict on the job before it runs; ("runs", "") when it runs."""
    last_death = time.time() - 60
    step.crashes.counts = {"j": (deaths, last_death)}
    run_at = utc_now() - timedelta(seconds=30) if deferred else None
    envelope = Envelope(id="j", type="fine", queue="default", created_at=utc_now(), run_at=run_at)
    outcome = step.judge(envelope)
    if outcome is None:
        return "runs", ""
    if outcome.kind == "deferred":
        assert outcome.envelope.run_at is not None
        assert 0.5 < (outcome.envelope.run_at - utc_now()).total_seconds() < 6
        assert outcome.envelope.attempt == envelope.attempt  # a death uses up no attempt
    return outcome.kind, outcome.reason


def test_a_job_that_was_running_in_a_dead_process_runs_again_later_once(
    after_crashes: AfterCrashes,
) -> None:
    assert outcome_with(after_crashes, 1)[0] == "deferred"
    assert outcome_with(after_crashes, CRASHES_BEFORE_DEAD - 1, deferred=True) == ("runs", "")


def test_a_job_that_killed_its_process_often_enough_is_dead_lettered_with_the_reason(
    after_crashes: AfterCrashes,
) -> None:
    kind, reason = outcome_with(after_crashes, CRASHES_BEFORE_DEAD, deferred=True)
    assert (kind, reason) == ("dead", f"killed its worker process {CRASHES_BEFORE_DEAD} times")
