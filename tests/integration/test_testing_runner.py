"""The in-memory TestRunner promises the broker's semantics: the same scenarios, both ways."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pulsarjobs import App, Envelope, JobCall, JobError, Middleware
from pulsarjobs.testing import TestRunner
from tests.apps.pipeline import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, wait_until, worker_in_thread


class Outcomes(Middleware):
    """Per job: how many runs reached the handler, and how the job ended."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.end: dict[str, str] = {}

    def before_process(self, envelope: Envelope) -> None:
        self.runs[envelope.id] += 1

    def after_process(self, envelope: Envelope, duration: float) -> None:
        self.end[envelope.id] = "done"

    def on_failure(self, envelope: Envelope, error: JobError, retry_in: float | None) -> None:
        self.end[envelope.id] = f"failed:{error.type}"

    def on_dead(self, envelope: Envelope, reason: str) -> None:
        error = envelope.last_error.type if envelope.last_error else ""
        self.end[envelope.id] = f"dead:{error}"

    def on_expired(self, envelope: Envelope) -> None:
        self.end[envelope.id] = "expired"


SCENARIOS = {
    "succeeds": JobCall("greet", args=("Ada",)),
    "fails twice": JobCall("fails_twice"),
    "always fails": JobCall("always_fails", args=("down",)),
    "unknown type": JobCall("no_such_job"),
    "expired": JobCall("greet", args=("late",), expires_in=timedelta(milliseconds=1)),
    "times out": JobCall("too_slow_async"),
}


def enqueue_all(app: App) -> dict[str, str]:
    ids = {name: app.enqueue(call) for name, call in SCENARIOS.items()}
    # Arguments that do not fit: this app's enqueue refuses them, so they are sent as by a
    # producer whose declaration of the job differs.
    misfit = app.envelope(JobCall("greet", args=("x",))).replace(args=(), kwargs={"nobody": 1})
    app.publish_envelope(misfit).result()
    ids["bad arguments"] = misfit.id
    return ids


def results(outcomes: Outcomes, ids: dict[str, str]) -> dict[str, tuple[int, str]]:
    return {
        name: (outcomes.runs[job_id], outcomes.end.get(job_id, "")) for name, job_id in ids.items()
    }


def settled(outcomes: Outcomes) -> bool:
    ends = outcomes.end.values()
    return len(ends) == len(SCENARIOS) + 1 and not any(end.startswith("failed") for end in ends)


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSARJOBS_TEST_RECORD", str(tmp_path / "record.jsonl"))


@pytest.fixture
def broker_app(broker: BrokerUnderTest) -> Iterator[App]:
    app = make_app(fresh_settings(broker))
    yield app
    app.close()


def test_runner_and_broker_agree_on_every_outcome(broker_app: App, record: None) -> None:
    in_memory_app = make_app(broker_app.settings)
    in_memory = Outcomes()
    in_memory_app.hooks.add(in_memory)
    with TestRunner(in_memory_app) as runner:
        memory_ids = enqueue_all(in_memory_app)
        runner.advance(timedelta(milliseconds=10))  # as the broker's jobs wait for a worker
        runner.run_all()

    on_broker = Outcomes()
    broker_app.hooks.add(on_broker)
    broker_ids = enqueue_all(broker_app)
    time.sleep(0.05)  # the expiring job's moment passes before any worker sees it
    with worker_in_thread(broker_app):
        wait_until(lambda: settled(on_broker), 60)

    expected = {
        "succeeds": (1, "done"),
        "fails twice": (3, "done"),
        "always fails": (3, "dead:ValueError"),
        "unknown type": (0, "dead:pulsarjobs.UnknownJobType"),
        "bad arguments": (0, "dead:pulsarjobs.BadArguments"),
        "expired": (0, "expired"),
        "times out": (1, "dead:pulsarjobs.errors.JobTimeout"),
    }
    assert results(on_broker, broker_ids) == expected
    assert results(in_memory, memory_ids) == expected
