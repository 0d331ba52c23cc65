"""Fair queueing on the real broker (docs/flow-control.md): a small key's first job starts within
L jobs of a deep key's backlog in a worker; the fair queue's keys and their waiting counts in
`pulsarjobs flow fair`, the Queues page and the queue's own waiting count. Scenario 19
(tests/reliability/test_fair_queueing.py) measures the bound with 2 processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator

import pytest

from pulsarjobs import App, Settings
from pulsarjobs.dashboard import Secret, create_app
from pulsarjobs.flow.fairness import lane_of
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, wait_until, worker_in_thread

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")
    from starlette.testclient import TestClient

DEEP = 300


@pytest.fixture
def fair_app(broker: BrokerUnderTest) -> Iterator[tuple[App, list[str]]]:
    started: list[str] = []
    app = App(fresh_settings(broker))

    @app.job(queue="reports", fair_key=lambda tenant: tenant)
    def report(tenant: str) -> None:
        started.append(tenant)

    yield app, started
    app.close()


def small_key(settings: Settings) -> str:
    """A key whose lane is not the deep key's."""
    deep = lane_of("deep", settings.fair_lanes)
    return next(
        f"small-{n}" for n in range(99) if lane_of(f"small-{n}", settings.fair_lanes) != deep
    )


def test_a_small_key_starts_within_one_round_of_a_deep_backlog(
    fair_app: tuple[App, list[str]],
) -> None:
    app, started = fair_app
    report, small = app.jobs["report"], small_key(app.settings)
    app.enqueue_many([report.call("deep") for _ in range(DEEP)] + [report.call(small)])
    with worker_in_thread(app, "reports", concurrency=1):
        wait_until(lambda: len(started) == DEEP + 1, timeout=60)
    # Two lanes hold jobs: the small key's first waits for one turn of the deep key's lane at
    # most (L = 16 with every lane busy); not for its 300 jobs.
    assert started.index(small) <= 1, started[:5]


def test_the_keys_waiting_are_shown_by_the_cli_and_the_queues_page(
    fair_app: tuple[App, list[str]],
) -> None:
    app, _ = fair_app
    report, small = app.jobs["report"], small_key(app.settings)
    app.enqueue_many([report.call("deep") for _ in range(30)] + [report.call(small)] * 2)
    settings = app.settings
    env = {**os.environ, "PULSARJOBS_SERVICE_URL": settings.service_url,
           "PULSARJOBS_ADMIN_URL": settings.admin_url,
           "PULSARJOBS_NAMESPACE": settings.namespace}  # fmt: skip
    shown = subprocess.run(
        [sys.executable, "-m", "pulsarjobs", "flow", "fair", "--json"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip
    [keys] = json.loads(shown.stdout)
    assert (keys["queue"], keys["keys"], keys["exact"]) == ("reports", {"deep": 30, small: 2}, True)
    assert keys["lane_of_key"]["deep"] == lane_of("deep", settings.fair_lanes)

    web = create_app(settings, Secret("token"))
    with TestClient(web, base_url="http://127.0.0.1:7420") as client:
        deadline = time.monotonic() + 30
        while "fair-key" not in (page := client.get("/queues", headers=AUTH).text):
            assert time.monotonic() < deadline, page[-2000:]
            time.sleep(0.5)
    assert "reports: key (32 waiting on 2 lanes)" in page
    assert f'<td>{small}</td><td class="n">2</td>' in page
    assert '<td class="n" data-testid="waiting">32</td>' in page  # the queue counts its lanes


AUTH = {"Authorization": "Bearer token"}
