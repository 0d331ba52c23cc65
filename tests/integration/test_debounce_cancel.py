"""On the real broker: cancel by key — jobs waiting, scheduled and retrying with a key are
cancelled and counted, the others untouched and run — and pending debounces as listed."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest

from pulsarjobs import App, Debounce, RetryPolicy, current_job
from pulsarjobs.flow.debounce import AFTER_META, CALL_META, WINDOW_META
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import decode
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import fresh_settings, read_topic, wait_until, worker_in_thread
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


def test_a_timeout_makes_one_run_per_window_however_often_the_key_is_called(app: App) -> None:
    ran: list[str] = []  # job ids, as they ran

    @app.job(debounce=Debounce(timedelta(seconds=2), timeout=timedelta(seconds=3)))
    def reindex(n: int) -> None:
        ran.append(current_job().id)

    ids = []
    with worker_in_thread(app) as worker:
        for n in range(28):  # a call every 0.25 s for 7 s: the period never passes quietly
            ids.append(reindex.enqueue(n))
            time.sleep(0.25)
        wait_until(lambda: worker.stats.done + worker.stats.grouped == len(ids), 60)
    topic = topics_for(app.settings, "default").jobs
    jobs = {job.id: job for job in (decode(m.data()) for m in read_topic(app.settings, topic))}
    windows: dict[str, list[str]] = {}  # the calls of each window, in order
    for job_id in ids:
        windows.setdefault(jobs[job_id].meta[WINDOW_META], []).append(job_id)
    assert len(windows) >= 2
    ran_calls = {jobs[job_id].meta[CALL_META] for job_id in ran}
    for calls in windows.values():
        runs = [job_id for job_id in ran if job_id in calls]
        assert calls[-1] in runs  # the window's last call ran
        for extra in set(runs) - {calls[-1]}:  # a call made as the run started runs too
            assert jobs[extra].meta[AFTER_META] in ran_calls
    assert len(ran) == len(set(ran))
