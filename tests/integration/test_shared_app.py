"""Several workers on one App, in one process (each on its own thread): one stopping leaves the
others running on the app's connection; the last to stop closes it."""

from __future__ import annotations

from pathlib import Path

from pulsarjobs.app import JobCall
from pulsarjobs.operations.inspector import Inspector
from tests.apps.pipeline import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, started, wait_until, worker_in_thread


def test_a_worker_stopping_leaves_another_on_the_same_app_running(
    broker: BrokerUnderTest, record: Path
) -> None:
    settings = fresh_settings(broker).with_changes(heartbeat_interval=1.0)
    app = make_app(settings)
    with Inspector(settings) as inspector:
        with worker_in_thread(app) as staying:
            with worker_in_thread(app) as leaving:
                wait_until(lambda: len(inspector.workers()) == 2, 60)
            app.enqueue(JobCall("greet", args=("after",)))
            wait_until(lambda: len(started(record)) == 1, 30)
            states = {w.worker: w.state for w in inspector.workers(everyone=True)}
            assert states == {leaving.name: "stopped", staying.name: "running"}
        wait_until(lambda: {w.state for w in inspector.workers(everyone=True)} == {"stopped"}, 10)
