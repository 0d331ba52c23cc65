"""Debounced jobs under the TestRunner: windows by the virtual clock, bad options refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pulsarjobs import App, ConfigurationError, Debounce, Settings
from pulsarjobs.testing import TestRunner


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
