"""The TestRunner where a unit test could trip on it: operations that would reach the broker,
a second runner on the same app, a drain called from inside an event loop, a crash named by
job id; and a due time or a schedule's grace of the wrong type."""

import asyncio
from datetime import timedelta

import pytest

from pulsarjobs.app import App
from pulsarjobs.errors import ConfigurationError
from pulsarjobs.settings import Settings
from pulsarjobs.testing import TestRunner

NOBODY = Settings(service_url="pulsar://127.0.0.1:9", admin_url="http://127.0.0.1:9")


def test_queue_policies_set_under_a_runner_reach_no_broker_and_are_still_checked() -> None:
    app = App(NOBODY)  # an admin call there would fail: nothing listens
    with TestRunner(app):
        app.set_rate_limit("exports", 5)
        app.set_rate_limit("exports", None)
        kept = app.set_dead_retention("exports", max_age=timedelta(days=7), max_size="1G")
        assert (kept.max_age, kept.max_size) == (timedelta(days=7), 1 << 30)
        with pytest.raises(ConfigurationError, match="whole number"):
            app.set_rate_limit("exports", 0)
        with pytest.raises(ConfigurationError, match="at least 1 s"):
            app.set_dead_retention("exports", max_age=timedelta(0))
    app.close()


def test_a_second_runner_on_the_same_app_says_so_and_the_first_still_works(app: App) -> None:
    @app.job
    def noop() -> None: ...

    with TestRunner(app) as runner:
        with pytest.raises(ConfigurationError, match="already runs this app's jobs"), \
                TestRunner(app):  # fmt: skip
            pass
        noop.enqueue()
        runner.run_all()
        assert runner.runs(noop) == 1


def test_run_all_inside_an_event_loop_points_to_its_async_twin(app: App) -> None:
    @app.job
    def noop() -> None: ...

    async def a_test(runner: TestRunner) -> None:
        noop.enqueue()
        with pytest.raises(RuntimeError, match=r"await runner\.run_all_async\(\)"):
            runner.run_all()
        await runner.run_all_async()

    with TestRunner(app) as runner:
        asyncio.run(a_test(runner))
        assert runner.runs(noop) == 1


def test_a_process_can_be_made_to_die_under_one_job_by_its_id(app: App, runner: TestRunner) -> None:
    @app.job
    def charge(order: str) -> None: ...

    doomed = charge.enqueue("o-1")
    spared = charge.enqueue("o-2")
    runner.crash_process_in(doomed)
    runner.run_all()
    verdicts = [(outcome.envelope.id, str(outcome.kind)) for outcome in runner.outcomes]
    assert sorted(verdicts) == sorted([(doomed, "deferred"), (doomed, "done"), (spared, "done")])


@pytest.mark.parametrize(
    ("when", "says"),
    [
        ({"in_": 5}, r"in_=5: give a timedelta"),
        ({"at": "2027-01-01T00:00:00Z"}, r"at='2027-01-01T00:00:00Z': give an aware datetime"),
    ],
)
def test_a_due_time_of_the_wrong_type_is_refused_in_one_line(
    app: App, runner: TestRunner, when: dict[str, object], says: str
) -> None:
    @app.job
    def remind() -> None: ...

    with pytest.raises(ValueError, match=says):
        app.enqueue(remind.call(), **when)  # type: ignore[arg-type]
    assert runner.pending == []


def test_a_schedules_grace_of_the_wrong_type_is_refused_naming_the_schedule(app: App) -> None:
    @app.job
    def report() -> None: ...

    with pytest.raises(ConfigurationError, match=r"grace=1 for nightly: give a timedelta"):
        app.schedule(report, "0 3 * * *", name="nightly", grace=1)  # type: ignore[arg-type]
