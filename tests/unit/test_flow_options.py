"""Flow-control options as declared and called, and unique jobs in the in-memory TestRunner."""

from datetime import timedelta

import pytest

from pulsarjobs import DuplicateJob
from pulsarjobs.app import App
from pulsarjobs.errors import ConfigurationError
from pulsarjobs.flow.unique import default_key
from pulsarjobs.settings import Settings
from pulsarjobs.testing import TestRunner


def test_unique_keys_default_to_type_and_arguments_and_a_call_may_name_its_own() -> None:
    app = App(Settings())

    @app.job(unique_for=timedelta(minutes=5))
    def refresh(feed: int, *, full: bool = False) -> None: ...

    first, second = (app.envelope(refresh.call(1, full=True)) for _ in range(2))
    assert first.unique_key == second.unique_key == default_key("refresh", (1,), {"full": True})
    other = app.envelope(refresh.call(2))
    assert other.unique_key != first.unique_key
    named = app.envelope(refresh.call(1).with_options(unique_key="feed:1"))
    assert named.unique_key == "feed:1"
    assert app.envelope(app.jobs["refresh"].call(1)).order_key is None


def test_limit_key_defaults_to_the_type_of_a_limited_job_only() -> None:
    app = App(Settings())

    @app.job(concurrency_limit=2)
    def limited() -> None: ...

    @app.job(rate_limit=5)
    def paced() -> None: ...

    @app.job
    def free() -> None: ...

    assert app.envelope(paced.call()).limit_key == "paced"
    assert app.envelope(limited.call()).limit_key == "limited"
    assert app.envelope(limited.call().with_options(limit_key="partner:7")).limit_key == "partner:7"
    assert app.envelope(free.call()).limit_key is None


@pytest.mark.parametrize(
    "options", [{"unique_for": timedelta(0)}, {"concurrency_limit": 0}, {"rate_limit": 0}]
)
def test_bad_flow_options_are_refused_when_declared(options: dict[str, object]) -> None:
    app = App(Settings())
    with pytest.raises(ConfigurationError):
        app.job(**options)(lambda: None)  # type: ignore[call-overload]


def test_an_ordered_job_cannot_be_scheduled() -> None:
    app = App(Settings())

    @app.job
    def step() -> None: ...

    with pytest.raises(ValueError, match="cannot be scheduled"):
        app.envelope(step.call().with_options(order_key="k"), in_=timedelta(minutes=1))


def test_the_test_runner_makes_one_job_per_held_key_and_frees_it_once_run() -> None:
    app = App(Settings())
    ran = []

    @app.job(unique_for=timedelta(minutes=5))
    def refresh(feed: int) -> None:
        ran.append(feed)

    with TestRunner(app) as runner:
        first = refresh.enqueue(1)
        assert refresh.enqueue(1) == first
        with pytest.raises(DuplicateJob) as duplicate:
            app.enqueue(refresh.call(1).with_options(if_duplicate="raise"))
        assert duplicate.value.job_id == first
        runner.run_all()
        assert ran == [1]
        assert refresh.enqueue(1) != first  # settled: the key is free
        runner.advance(timedelta(minutes=1))
        held = app.unique_keys.held()
        assert [hold.key for hold in held] == [default_key("refresh", (1,), {})]
        runner.advance(timedelta(minutes=5))  # past unique_for: free again
        assert app.unique_keys.held() == []
