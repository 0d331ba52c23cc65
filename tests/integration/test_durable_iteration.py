"""A durable iteration on the real broker, in worker processes: a graceful stop (SIGTERM)
stores the position after the row in hand and hands the job on, so that a new worker goes on
from there with no row processed twice; a kill -9 re-processes only the rows since the last
stored position (at most `every`, 50 here)."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulsarjobs import App
from tests.apps.workflows import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    settings_env,
    start_worker_process,
    stop_process,
    wait_until,
)

ROWS = 600
PAUSE_S = 0.01  # a row: the whole export takes some 6 s of work
EVERY = 50  # as tests/apps/workflows.py stores the position


@pytest.fixture
def app(broker: BrokerUnderTest) -> Iterator[App]:
    created = make_app(fresh_settings(broker))
    yield created
    created.close()


def rows_noted(path: Path) -> list[int]:
    if not path.exists():
        return []
    text = path.read_text()
    return [int(line) for line in text[: text.rfind("\n") + 1].split()]


def run_export(app: App, tmp_path: Path, interrupt: signal.Signals) -> Counter[int]:
    """The export in a worker process, interrupted twice part-way, then run to the end."""
    noted = tmp_path / "rows"
    env = settings_env(app.settings, noted)
    app.jobs["export"].enqueue(ROWS, PAUSE_S)
    for round_ in range(2):
        worker = start_worker_process(env, tmp_path / f"worker{round_}.log",
                                      app="tests.apps.workflows:app")  # fmt: skip
        seen = len(rows_noted(noted))
        wait_until(lambda seen=seen: len(rows_noted(noted)) >= seen + 120, 120, 0.05)
        worker.send_signal(interrupt)
        assert worker.wait(60) == (0 if interrupt is signal.SIGTERM else -signal.SIGKILL)
    last = start_worker_process(env, tmp_path / "last.log", app="tests.apps.workflows:app")
    try:
        wait_until(lambda: ROWS - 1 in rows_noted(noted), 120, 0.1)
    finally:
        assert stop_process(last) == 0
    return Counter(rows_noted(noted))


def test_a_graceful_stop_hands_the_iteration_on_with_no_row_processed_twice(
    app: App, tmp_path: Path
) -> None:
    times = run_export(app, tmp_path, signal.SIGTERM)
    assert set(times) == set(range(ROWS))
    assert [row for row, count in times.items() if count > 1] == []


def test_a_kill_re_processes_at_most_the_rows_since_the_last_stored_position(
    app: App, tmp_path: Path
) -> None:
    times = run_export(app, tmp_path, signal.SIGKILL)
    assert set(times) == set(range(ROWS))
    again = sum(count - 1 for count in times.values())
    print(f"rows processed again after two kill -9: {again} (at most {2 * EVERY})")
    assert again <= 2 * EVERY
