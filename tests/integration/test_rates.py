"""Rate limits on the real broker: a queue's starts a second across four worker processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pulsarjobs.app import App
from pulsarjobs.flow.rates import rate_limit
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topics import topics_for
from tests.apps.flow import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    settings_env,
    start_worker_process,
    started,
    stop_process,
    wait_until,
)
from tests.integration.test_operations import cli_json

RATE = 100
SETTLE_S = 3.0  # the first seconds: workers connect, the limiter finds its pace
WINDOW_S = 30.0  # starts counted over this long (as the issue asks)
JOBS = int(RATE * (SETTLE_S + WINDOW_S + 5))


@pytest.fixture
def flow_app(broker: BrokerUnderTest) -> Iterator[App]:
    created = make_app(fresh_settings(broker))
    yield created
    created.close()


def test_a_queue_limited_to_100_a_second_starts_about_100_a_second_over_four_workers(
    flow_app: App, tmp_path: Path
) -> None:
    flow_app.set_rate_limit("rated", RATE)
    with Admin(flow_app.settings.admin_url) as admin:
        assert rate_limit(admin, topics_for(flow_app.settings, "rated")) == RATE
    flow_app.enqueue_many([flow_app.jobs["rated"].call(n) for n in range(JOBS)])
    record = tmp_path / "record.jsonl"
    env = settings_env(flow_app.settings, record)
    logs = [tmp_path / f"worker{i}.log" for i in range(4)]
    workers = [
        start_worker_process(
            env, log, "--queues", "rated", "--concurrency", "4", app="tests.apps.flow:app"
        )
        for log in logs
    ]
    try:
        wait_until(lambda: len(started(record)) >= RATE * 2, 120)
        first = min(run["t"] for run in started(record))
        begins, ends = first + SETTLE_S, first + SETTLE_S + WINDOW_S
        wait_until(lambda: max(run["t"] for run in started(record)) > ends, 120, interval=0.5)
    finally:
        for worker, log in zip(workers, logs, strict=True):
            assert stop_process(worker) == 0, log.read_text()[-2000:]
    runs = started(record)
    measured = sum(1 for run in runs if begins <= run["t"] < ends) / WINDOW_S
    print(f"measured {measured:.1f} starts/s over {WINDOW_S:.0f} s (limit {RATE}/s)")
    assert len({run["pid"] for run in runs}) == 4
    # Never faster than the limit (5% for the edges of the window); slower only by what a
    # loaded machine may lose.
    assert RATE * 0.85 <= measured <= RATE * 1.05


TYPE_RATE = 20  # as tests/apps/flow.py declares `rate_limited`
TYPE_WINDOW_S = 10.0
BURST_SLACK = 1.5  # recorded starts of one second, over the limit, that scheduling lag explains


def test_a_job_type_limited_to_20_a_second_never_starts_faster_over_four_workers(
    flow_app: App, tmp_path: Path
) -> None:
    flow_app.enqueue_many([flow_app.jobs["rate_limited"].call(n) for n in range(TYPE_RATE * 20)])
    record = tmp_path / "record.jsonl"
    env = settings_env(flow_app.settings, record)
    logs = [tmp_path / f"worker{i}.log" for i in range(4)]
    workers = [
        start_worker_process(env, log, "--concurrency", "4", app="tests.apps.flow:app")
        for log in logs
    ]
    try:
        wait_until(lambda: len(started(record)) >= TYPE_RATE, 120)
        first = min(run["t"] for run in started(record))
        begins, ends = first + SETTLE_S, first + SETTLE_S + TYPE_WINDOW_S
        wait_until(lambda: max(run["t"] for run in started(record)) > ends, 120, interval=0.5)
        report = cli_json(flow_app.settings, "flow")
    finally:
        for worker, log in zip(workers, logs, strict=True):
            assert stop_process(worker) == 0, log.read_text()[-2000:]
    runs = started(record)
    measured = sum(1 for run in runs if begins <= run["t"] < ends) / TYPE_WINDOW_S
    print(f"measured {measured:.1f} starts/s over {TYPE_WINDOW_S:.0f} s (limit {TYPE_RATE}/s)")
    assert report["key_rate_limits"] == {"rate_limited": TYPE_RATE}
    # Tokens come back a second after use, plus the client's redelivery tick: at most the
    # limit, and not far below it.
    assert TYPE_RATE * 0.6 <= measured <= TYPE_RATE * 1.05
    busiest_second = max(
        sum(1 for run in runs if second <= run["t"] < second + 1)
        for second in (begins + step / 10 for step in range(int(TYPE_WINDOW_S * 10)))
    )
    print(f"most starts within one second: {busiest_second}")
    # A token comes back no sooner than a second after use, but a start is recorded by the job
    # once its process gets the CPU: on a loaded machine a few hundred ms later, which moves
    # starts from one second into the next. A limiter that lets bursts through starts far more.
    assert busiest_second <= TYPE_RATE * BURST_SLACK
