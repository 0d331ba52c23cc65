"""On the real broker: cancel by key — jobs waiting, scheduled and retrying with a key are
cancelled and counted, the others untouched and run — and pending debounces as listed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest

from pulsarjobs import App, RetryPolicy
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, wait_until, worker_in_thread
from tests.integration.test_dashboard import BEARER, dashboard, post
from tests.integration.test_operations import cli, cli_json

pytestmark = pytest.mark.broker


@pytest.fixture
def app(broker: BrokerUnderTest) -> Iterator[App]:
    created = App(fresh_settings(broker))
    yield created
    created.close()


def test_jobs_with_the_key_are_cancelled_and_counted_and_the_others_run(app: App) -> None:
    ran: Counter[tuple[str, int]] = Counter()

    @app.job(retry=RetryPolicy(max_attempts=3, initial_delay=3600, jitter=0.0))
    def sync_user(n: int) -> None:
        ran["sync_user", n] += 1
        if n == 2:
            raise ConnectionError("directory away")

    @app.job(unique_for=timedelta(hours=1))
    def refresh_profile(n: int) -> None:
        ran["refresh_profile", n] += 1

    @app.job
    def audit(n: int) -> None:
        ran["audit", n] += 1

    sync_user.enqueue(2)
    with worker_in_thread(app) as worker:
        wait_until(lambda: worker.stats.retried == 1, 30)  # retrying in an hour
    sync_user.enqueue(0)  # waiting: no worker runs
    app.enqueue(sync_user.call(1), in_=timedelta(hours=2))  # scheduled
    held = app.enqueue(refresh_profile.call(5).with_options(unique_key="user:42"))
    audit.enqueue(4)

    assert app.cancel_matching(type="sync_user") == 3
    result = cli(app.settings, "jobs", "cancel-matching", "unique_key=user:42")
    assert result.exit_code == 0, result.output
    assert "Cancelled 1 jobs carrying unique_key=user:42 in every queue." in result.output
    assert app.cancel_matching(type="sync_user") == 0  # nothing with the key is left
    assert refresh_profile.enqueue(5) != held  # the cancelled job's unique key was given back
    with worker_in_thread(app) as worker:
        wait_until(lambda: worker.stats.done == 2, 30)
    assert ran == {("sync_user", 2): 1, ("audit", 4): 1, ("refresh_profile", 5): 1}
    bad = cli(app.settings, "jobs", "cancel-matching", "colour=red")
    assert bad.exit_code != 0 and "cannot match on colour" in bad.output


def test_pending_debounces_are_listed_by_the_cli_and_the_queues_page(app: App) -> None:
    @app.job(debounce=timedelta(minutes=5))
    def reindex(doc: int) -> None: ...

    for doc in range(3):
        app.enqueue(reindex.call(doc).with_options(debounce_key="doc:7"))
    report = cli_json(app.settings, "flow")
    [window] = report["debounce_windows"]
    assert (window["type"], window["calls"], report["debounces_open"]) == ("reindex", 3, 1)
    shown = cli(app.settings, "flow")
    assert "Pending debounces: 1" in shown.output and "doc:7" in shown.output
    with dashboard(app.settings) as client:
        html = client.get("/queues", headers=BEARER).text
        assert 'data-testid="debounce"' in html and "doc:7" in html
        assert 'data-testid="cancel-matching"' in html
        cancelled = post(client, "/jobs/cancel-matching", {"key": "debounce_key", "value": "doc:7"})
        assert cancelled == {"cancelled": 3}  # every call's job: the window will not run
        refused = client.post("/api/jobs/cancel-matching", data={"key": "colour", "value": "red"},
                              headers=BEARER)  # fmt: skip
        assert refused.status_code == 400 and "cannot match on colour" in refused.text
    assert cli_json(app.settings, "flow")["debounces_open"] == 0  # its window closed
