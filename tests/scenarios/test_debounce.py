"""Debounced jobs, the same in memory and on the broker: calls of one key make one run."""

from __future__ import annotations

from datetime import timedelta

from pulsarjobs import Debounce
from tests.scenarios.harness import Driver, on_both


@on_both()
def test_calls_of_a_key_make_one_run_with_the_last_or_the_first_arguments(driver: Driver) -> None:
    app, tally = driver.app, driver.tally

    @app.job(debounce=timedelta(seconds=1))  # key: the job's type, whatever the arguments
    def reindex(doc: int, version: int) -> None:
        tally.ran((doc, version))

    @app.job(debounce=Debounce(timedelta(seconds=1), keep="first"))
    def notify(user: str, event: str) -> None:
        tally.ran((user, event))

    ids = [reindex.enqueue(7, version) for version in range(10)]
    ids += [reindex.enqueue(8, version) for version in range(3)]
    per_user = [
        app.enqueue(notify.call(user, event).with_options(debounce_key=user))
        for event in ("edited", "commented", "shared")
        for user in ("ann", "bob")
    ]
    report = driver.drain(settled=3)

    assert report.notes("reindex") == [(8, 2)]  # the last call's arguments
    assert sorted(report.notes("notify")) == [("ann", "edited"), ("bob", "edited")]
    assert report.runs_by_id() == {ids[-1]: 1, per_user[-2]: 1, per_user[-1]: 1}
    assert {report.verdicts[job_id] for job_id in report.runs_by_id()} == {"done"}
