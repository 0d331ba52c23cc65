"""Debounced jobs under the TestRunner: windows by the virtual clock, bad options refused."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

import pytest

from pulsarjobs import App, ConfigurationError, Debounce, RetryPolicy, Settings
from pulsarjobs.flow.debounce import WINDOW_META, Debounces, Window
from pulsarjobs.testing import TestRunner
from pulsarjobs.transport.memory import InMemoryConnection, MemoryKeyTable
from pulsarjobs.wire.envelope import Envelope, new_id


def test_a_timeout_bounds_a_window_and_the_next_call_opens_another() -> None:
    app = App(Settings())
    ran: list[int] = []

    @app.job(debounce=Debounce(timedelta(seconds=5), timeout=timedelta(seconds=12)))
    def reindex(version: int) -> None:
        ran.append(version)

    with TestRunner(app) as runner:
        for version in range(30):  # a call a second: the window would never close on its own
            reindex.enqueue(version)
            runner.run_all(until=runner.now + timedelta(seconds=1))
        runner.run_all()
        grouped = runner.stats.grouped

    assert ran == [11, 23, 29]  # due 12 s after each window's first call, the last one alone
    assert grouped == 27


def test_calls_faster_than_a_second_past_the_timeout_do_not_put_the_run_off() -> None:
    app = App(Settings())
    ran: list[float] = []

    @app.job(debounce=Debounce(timedelta(seconds=2), timeout=timedelta(seconds=3)))
    def reindex(at: float) -> None:
        ran.append(at)

    with TestRunner(app) as runner:
        for quarter in range(40):  # a call every 0.25 s for 10 s
            reindex.enqueue(quarter / 4)
            runner.run_all(until=runner.now + timedelta(seconds=0.25))
        runner.run_all()

    assert ran == [2.75, 5.75, 8.75, 9.75]  # each window's last call, 3 s after its first


def test_a_cancelled_latest_call_cancels_its_window_and_the_next_call_starts_afresh() -> None:
    app = App(Settings())
    ran: list[str] = []

    @app.job(debounce=Debounce(timedelta(seconds=5), keep="first"))
    def notify(event: str) -> None:
        ran.append(event)

    with TestRunner(app) as runner:
        notify.enqueue("a")
        app.cancel(notify.enqueue("b"))
        runner.run_all()
        notify.enqueue("c")
        runner.run_all()
        verdicts = sorted(str(outcome.kind) for outcome in runner.outcomes)

    assert ran == ["c"]
    assert verdicts == ["cancelled", "done", "grouped"]


def test_bad_debounce_options_are_refused_where_they_are_given() -> None:
    app = App(Settings())
    with pytest.raises(ConfigurationError, match="at least 1 s"):
        app.job(debounce=timedelta(milliseconds=200))(print)
    with pytest.raises(ConfigurationError, match="do not combine"):
        app.job(debounce=timedelta(seconds=5), unique_for=timedelta(minutes=1))(print)
    with pytest.raises(ConfigurationError, match='"first" or "last"'):
        Debounce(timedelta(seconds=5), keep="middle")  # type: ignore[arg-type]

    @app.job
    def plain() -> None: ...

    @app.job(debounce=timedelta(seconds=5))
    def debounced() -> None: ...

    with pytest.raises(ValueError, match="debounce_key= is for jobs declared with debounce="):
        app.envelope(plain.call().with_options(debounce_key="k"))
    with pytest.raises(ValueError, match="cannot be scheduled"):
        app.envelope(debounced.call(), in_=timedelta(seconds=1))


def test_cancel_matching_cancels_waiting_scheduled_and_retrying_jobs_with_the_key() -> None:
    app = App(Settings())
    ran: list[tuple[str, int]] = []

    @app.job(retry=RetryPolicy(max_attempts=3, initial_delay=3600, jitter=0.0))
    def sync_user(n: int) -> None:
        ran.append(("sync_user", n))
        if n == 2:
            raise ConnectionError("directory away")

    @app.job(unique_for=timedelta(hours=1))
    def refresh_profile(n: int) -> None:
        ran.append(("refresh_profile", n))

    @app.job
    def audit(n: int) -> None:
        ran.append(("audit", n))

    with TestRunner(app) as runner:
        sync_user.enqueue(2)
        runner.run_next()  # failed: retrying in an hour
        sync_user.enqueue(0)
        app.enqueue(sync_user.call(1), in_=timedelta(hours=2))
        app.enqueue(refresh_profile.call(5).with_options(unique_key="user:42"))
        audit.enqueue(4)

        assert app.cancel_matching(type="sync_user") == 3
        assert app.cancel_matching(unique_key="user:42") == 1
        assert app.cancel_matching(type="sync_user") == 0  # cancelled already
        runner.run_all()
        assert refresh_profile.enqueue(5) != ""  # the cancelled job gave its key back
        runner.run_all()

    assert ran == [("sync_user", 2), ("audit", 4), ("refresh_profile", 5)]
    assert len(runner.cancelled) == 4
    with pytest.raises(ValueError, match="cannot match on colour"):
        app.cancel_matching(colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="at least one key"):
        app.cancel_matching()


class LateWrite(MemoryKeyTable[Window]):
    """A table whose next read is overtaken: another process's write lands just after it."""

    overtaking: Callable[[], None] | None = None

    def catch_up(self) -> None:
        super().catch_up()
        if self.overtaking is not None:
            write, self.overtaking = self.overtaking, None
            write()


def test_a_run_starting_as_the_next_window_opens_does_not_erase_that_window() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    clock = [now]
    debounces = Debounces(
        InMemoryConnection(Settings(), lambda: clock[0]), lambda: clock[0], LateWrite
    )
    table = debounces.table
    assert isinstance(table, LateWrite)
    debounce = Debounce(timedelta(seconds=2), timeout=timedelta(seconds=3))
    stored: list[Envelope] = []

    def call() -> Envelope:
        def send(job: Envelope) -> Future[None]:
            stored.append(job)
            done: Future[None] = Future()
            done.set_result(None)
            return done

        return debounces.call(Envelope(new_id(), "reindex", "default", [], {}, debounce_key="k"),
                              debounce, send)  # fmt: skip

    last_of_first = call()
    clock[0] = now + timedelta(
        seconds=3
    )  # the window's timeout: its job is due, a call opens the next
    next_window: list[Envelope] = []
    table.overtaking = lambda: next_window.append(call())  # stored after the worker's read
    assert debounces.superseded_by(last_of_first) is None  # it runs, and closes its window
    (opener,) = next_window
    assert [w.job_id for w in debounces.windows()] == [opener.id]  # the next window is open
    clock[0] += timedelta(seconds=1)
    joined = call()
    assert joined.meta[WINDOW_META] == opener.meta[WINDOW_META]  # a call joins it, not a third
    clock[0] = now + timedelta(seconds=6)
    assert debounces.superseded_by(opener) == joined.id
    assert debounces.superseded_by(joined) is None
