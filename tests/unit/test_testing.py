import asyncio
import contextvars
import threading
import time
from datetime import datetime, timedelta

import pytest

from pulsarjobs.app import App, JobCall
from pulsarjobs.clock import utc_now
from pulsarjobs.errors import ConfigurationError, PayloadTooLarge
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.settings import Settings
from pulsarjobs.testing import TestRunner
from pulsarjobs.wire.envelope import ArgumentError
from pulsarjobs.worker.execution import current_job


def test_an_enqueued_job_runs_once_with_its_args(app: App, runner: TestRunner) -> None:
    greetings = []

    @app.job
    def greet(name: str, *, punctuation: str) -> None:
        greetings.append(name + punctuation)

    job_id = greet.enqueue("Ada", punctuation="!")
    assert greetings == []
    runner.run_all()
    assert greetings == ["Ada!"]
    assert [envelope.id for envelope in runner.done] == [job_id]
    assert runner.runs(greet) == runner.runs(job_id) == 1
    assert runner.pending == []


def test_a_job_failing_twice_then_succeeding_runs_three_times(app: App, runner: TestRunner) -> None:
    attempts = []

    @app.job(retry=RetryPolicy(max_attempts=5, initial_delay=10, jitter=0))
    def flaky() -> None:
        attempts.append(current_job().attempt)
        if len(attempts) < 3:
            raise ConnectionError("try again")

    started, real_start = runner.now, time.monotonic()
    flaky.enqueue()
    runner.run_all()
    assert attempts == [1, 2, 3]
    assert runner.runs(flaky) == 3
    [done] = runner.done
    assert done.attempt == 3
    assert done.last_error is not None and done.last_error.type == "ConnectionError"
    assert runner.now - started == timedelta(seconds=10 + 20)  # the backoff, in virtual time
    assert time.monotonic() - real_start < 5


def test_a_job_that_always_fails_ends_dead_after_max_attempts(app: App, runner: TestRunner) -> None:
    @app.job(retry=RetryPolicy(max_attempts=3))
    def broken() -> None:
        raise ValueError("no such user")

    broken.enqueue()
    runner.run_all()
    assert runner.runs(broken) == 3
    [dead] = runner.dead
    assert dead.attempt == 3
    assert dead.last_error is not None
    assert (dead.last_error.type, dead.last_error.message) == ("ValueError", "no such user")
    assert runner.outcomes[-1].reason == "failed 3 of 3 attempts"
    assert runner.done == runner.pending == []


def test_an_unknown_job_type_is_dead_at_once(runner: TestRunner, app: App) -> None:
    app.enqueue(JobCall("nobody_declared_me"))
    runner.run_all()
    [dead] = runner.dead
    assert dead.last_error is not None and dead.last_error.type == "pulsarjobs.UnknownJobType"
    assert [outcome.reason for outcome in runner.outcomes] == [
        "UnknownJobType: no job 'nobody_declared_me' is declared"
    ]


def test_bad_arguments_are_dead_at_once(app: App, runner: TestRunner) -> None:
    @app.job
    def add(a: int, b: int) -> int:
        return a + b

    with pytest.raises(ArgumentError, match=r"do not fit add\(a: int, b: int\)"):
        app.enqueue(JobCall("add", args=(1, 2, 3)))  # refused where it is enqueued
    misfit = app.envelope(add.call(1, 2)).replace(args=(1, 2, 3))
    app.publish_envelope(misfit)  # as a producer that declares `add` otherwise would
    runner.run_all()
    [dead] = runner.dead
    assert dead.attempt == 1
    assert runner.runs(add) == 0
    assert runner.outcomes[-1].reason.startswith("BadArguments: add(a: int, b: int)")


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((1, 2), {"c": 3}, "got an unexpected keyword argument 'c'"),
        ((1,), {"c": 2}, "missing a required argument: 'b'"),  # as many, other names
        ((1, 2), {"b": 2}, "multiple values for argument 'b'"),
    ],
)
def test_arguments_that_do_not_fit_are_dead_after_fitting_ones_of_other_names_or_number_ran(
    app: App, runner: TestRunner, args: tuple[int, ...], kwargs: dict[str, int], error: str
) -> None:
    @app.job
    def add(a: int, b: int) -> int:
        return a + b

    for fitting in (add.call(1, 2), add.call(1, b=2), add.call(a=1, b=2)):
        app.publish_envelope(app.envelope(fitting))  # each shape twice: remembered the 2nd time
        app.publish_envelope(app.envelope(fitting))
    misfit = app.envelope(add.call(1, 2)).replace(args=args, kwargs=kwargs)
    app.publish_envelope(misfit)
    runner.run_all()
    assert [outcome.value for outcome in runner.outcomes[:6]] == [3] * 6
    assert runner.outcomes[-1].reason == f"BadArguments: add(a: int, b: int) -> int: {error}"


def test_a_scheduled_job_does_not_run_before_its_time(app: App, runner: TestRunner) -> None:
    ran_at: list[datetime] = []

    @app.job
    def remind() -> None:
        ran_at.append(runner.now)

    due = runner.now + timedelta(hours=1)
    app.enqueue(remind.call(), in_=timedelta(hours=1))
    runner.run_all(until=due - timedelta(minutes=1))
    assert ran_at == []
    assert runner.now == due - timedelta(minutes=1)
    assert runner.run_next() is None
    assert len(runner.pending) == 1
    runner.advance(timedelta(minutes=1))
    assert runner.run_next() is not None
    assert ran_at == [due]


def test_jobs_enqueued_after_the_clock_moved_are_timed_in_virtual_time(
    app: App, runner: TestRunner
) -> None:
    @app.job
    def report() -> None: ...

    runner.advance(timedelta(days=3))
    call = report.call().with_options(expires_in=timedelta(minutes=5))
    app.enqueue(call, in_=timedelta(minutes=10))
    runner.run_all(until=runner.now + timedelta(minutes=9))
    assert runner.runs(report) == 0
    runner.run_all()
    assert runner.runs(report) == 1
    assert runner.expired == []


def test_an_expired_job_is_dropped(app: App, runner: TestRunner) -> None:
    @app.job
    def flash_sale() -> None: ...

    job_id = app.enqueue(flash_sale.call().with_options(expires_in=timedelta(minutes=5)))
    runner.advance(timedelta(minutes=6))
    runner.run_all()
    assert [envelope.id for envelope in runner.expired] == [job_id]
    assert runner.runs(flash_sale) == 0
    assert runner.done == []


def test_pending_is_ordered_by_due_time(app: App, runner: TestRunner) -> None:
    @app.job
    def noop() -> None: ...

    in_two_hours = app.enqueue(noop.call(), in_=timedelta(hours=2))
    in_one_hour = app.enqueue(noop.call(), in_=timedelta(hours=1))
    right_away = noop.enqueue()
    expected = [right_away, in_one_hour, in_two_hours]
    assert [envelope.id for envelope in runner.pending] == expected
    runner.run_all()
    assert [envelope.id for envelope in runner.done] == expected


def test_run_next_runs_one_due_job_at_a_time(app: App, runner: TestRunner) -> None:
    @app.job(retry=RetryPolicy(initial_delay=5, jitter=0))
    def fails_once() -> None:
        if current_job().attempt == 1:
            raise RuntimeError("first time")

    fails_once.enqueue()
    first = runner.run_next()
    assert first is not None and first.kind == "retry"
    assert runner.run_next() is None
    assert [envelope.attempt for envelope in runner.pending] == [2]
    runner.advance(timedelta(seconds=5))
    second = runner.run_next()
    assert second is not None and second.kind == "done"


def test_async_and_sync_handlers_both_run(app: App, runner: TestRunner) -> None:
    ran = []

    @app.job
    async def fetch(url: str) -> None:
        await asyncio.sleep(0)
        ran.append(("async", url, current_job().type))

    @app.job
    def store(key: str) -> None:
        ran.append(("sync", key, current_job().type))

    fetch.enqueue("https://example.org")
    store.enqueue("k")
    runner.run_all()
    assert ran == [("async", "https://example.org", "fetch"), ("sync", "k", "store")]


def test_the_async_drain_runs_in_the_tests_own_loop(app: App, runner: TestRunner) -> None:
    @app.job
    async def ping() -> None: ...

    async def scenario() -> None:
        await ping.enqueue_async()
        await runner.run_all_async()

    asyncio.run(scenario())
    assert runner.runs(ping) == 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_run_longer_than_its_timeout_fails(app: App, runner: TestRunner, kind: str) -> None:
    @app.job(timeout=0.05, max_attempts=1)
    def slow_sync() -> None:
        time.sleep(1)

    @app.job(timeout=0.05, max_attempts=1)
    async def slow_async() -> None:
        await asyncio.sleep(1)

    started = time.monotonic()
    app.enqueue(JobCall(f"slow_{kind}"))
    runner.run_all()
    [dead] = runner.dead
    assert dead.last_error is not None
    assert dead.last_error.type == "pulsarjobs.errors.JobTimeout"
    assert time.monotonic() - started < 0.9


def test_a_jobs_own_timeout_error_is_an_ordinary_failure(app: App, runner: TestRunner) -> None:
    @app.job(timeout=5, max_attempts=1)
    async def call_api() -> None:
        raise TimeoutError("the API did not answer")

    call_api.enqueue()
    runner.run_all()
    [dead] = runner.dead
    assert dead.last_error is not None
    assert (dead.last_error.type, dead.last_error.message) == (
        "TimeoutError",
        "the API did not answer",
    )


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_context_a_job_sets_does_not_leak_into_the_next(
    app: App, runner: TestRunner, kind: str
) -> None:
    user: contextvars.ContextVar[str] = contextvars.ContextVar("user", default="nobody")
    seen = []

    def record(name: str) -> None:
        seen.append(user.get())
        user.set(name)
        seen.append(current_job().kwargs["name"])

    @app.job
    def sync_job(name: str) -> None:
        record(name)

    @app.job
    async def async_job(name: str) -> None:
        await asyncio.sleep(0)  # the job's steps all run in its own context
        record(name)

    for name in ("ada", "grace"):
        app.enqueue(JobCall(f"{kind}_job", kwargs={"name": name}))
    runner.run_all()
    assert seen == ["nobody", "ada", "nobody", "grace"]
    assert user.get() == "nobody"


def test_enqueue_many_and_enqueue_async(app: App, runner: TestRunner) -> None:
    sums = []

    @app.job
    def add(a: int, b: int) -> None:
        sums.append(a + b)

    many = app.enqueue_many([add.call(1, 2), add.call(3, 4)])
    one = asyncio.run(add.enqueue_async(5, 6))
    runner.run_all()
    assert sums == [3, 7, 11]
    assert [envelope.id for envelope in runner.done] == [*many, one]


def test_enqueue_still_rejects_what_the_broker_would() -> None:
    app = App(Settings(max_message_size=1000))

    @app.job
    def upload(data: object) -> None: ...

    with TestRunner(app) as runner:
        with pytest.raises(ArgumentError):
            upload.enqueue({1, 2})
        with pytest.raises(PayloadTooLarge):
            upload.enqueue("x" * 2000)
        assert runner.pending == []


def test_enqueue_many_sends_none_when_one_job_cannot_be_encoded(
    app: App, runner: TestRunner
) -> None:
    @app.job
    def upload(data: object) -> None: ...

    with pytest.raises(ArgumentError, match=r"args\[0\]"):
        app.enqueue_many([upload.call("fine"), upload.call({1, 2}), upload.call("fine too")])
    assert runner.pending == []


def test_a_job_that_keeps_enqueueing_itself_stops_the_drain(app: App, runner: TestRunner) -> None:
    @app.job
    def forever() -> None:
        forever.enqueue()

    forever.enqueue()
    with pytest.raises(RuntimeError, match="still pending after 5 runs"):
        runner.run_all(max_runs=5)
    assert runner.runs(forever) == 5


def test_an_undecodable_message_is_dead_not_a_crash(runner: TestRunner) -> None:
    runner.connection.publish("persistent://public/pulsarjobs/default", b"\xff junk")
    runner.run_all()
    [dead] = runner.dead
    assert dead.last_error is not None and dead.last_error.type == "pulsarjobs.Undecodable"


def test_a_worker_cannot_use_the_in_memory_connection(runner: TestRunner) -> None:
    with pytest.raises(ConfigurationError, match="no Pulsar client"):
        _ = runner.connection.client


def test_the_app_is_restored_after_the_block(app: App) -> None:
    connection, hooks = app.connection, list(app.hooks.stack)
    with TestRunner(app) as runner:
        assert app.connection is runner.connection
        assert app.clock() == runner.now
    assert app.connection is connection
    assert app.clock is utc_now
    assert app.hooks.stack == hooks


def test_a_job_whose_process_dies_runs_again_and_is_dead_after_three_deaths(
    app: App, runner: TestRunner
) -> None:
    charged: list[str] = []

    @app.job
    def charge(order: str) -> None:
        charged.append(order)

    runner.crash_process_in(charge)
    charge.enqueue("o-1")
    runner.run_all()
    assert charged == ["o-1", "o-1"]  # its effect happened, then it ran again: be idempotent
    assert [str(outcome.kind) for outcome in runner.outcomes] == ["deferred", "done"]

    runner.crash_process_in(charge, times=3)
    charge.enqueue("o-2")
    runner.run_all()
    assert charged.count("o-2") == 3
    [dead] = runner.dead
    assert runner.outcomes[-1].reason == "killed its worker process 3 times"
    assert dead.last_error is not None and dead.last_error.type == "pulsarjobs.KilledWorker"


def test_a_paused_queues_jobs_wait_until_it_is_resumed(app: App, runner: TestRunner) -> None:
    @app.job(queue="reports")
    def build_report(n: int) -> None: ...

    @app.job
    def greet(n: int) -> None: ...

    app.pause("reports")
    build_report.enqueue(1)
    greet.enqueue(2)
    runner.run_all()
    assert (runner.runs(build_report), runner.runs(greet)) == (0, 1)
    assert [envelope.type for envelope in runner.pending] == ["build_report"]

    app.resume("reports")
    runner.run_all()
    assert runner.runs(build_report) == 1 and runner.pending == []


def test_the_runner_never_reaches_for_a_broker_not_even_to_index_a_job() -> None:
    app = App(Settings(service_url="pulsar://127.0.0.1:9"))  # nothing listens there

    @app.job()
    def noop() -> None:
        pass

    before = set(threading.enumerate())  # earlier tests' apps may have left theirs
    with TestRunner(app) as runner:
        noop.enqueue()
        runner.run_all()
        assert runner.stats.done == 1
    started = {thread.name for thread in set(threading.enumerate()) - before}
    assert "pulsarjobs-job-index" not in started  # a thread that would wait on the broker
    app.close()
