"""Jobs the batch tests run, in the test process or in worker subprocesses: each run appends
one JSON line to the file PULSARJOBS_TEST_RECORD names (see tests/apps/pipeline.py)."""

from __future__ import annotations

from pulsarjobs.app import App
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.settings import Settings
from tests.apps.pipeline import record


def make_app(settings: Settings) -> App:
    app = App(settings)

    @app.job
    def work(n: int) -> None:
        record("start", n=n)

    @app.job(retry=RetryPolicy(max_attempts=1))
    def fail(n: int) -> None:
        record("start", n=n)
        raise RuntimeError(f"job {n} fails")

    @app.job
    def callback(batch: str, kind: str) -> None:
        record("callback", batch=batch, kind=kind)

    @app.job
    def spawn(n: int) -> None:
        """Adds `n` jobs to its own batch while it runs."""
        record("start", n=-1)
        app.current_batch().enqueue_many([work.call(100 + i) for i in range(n)])

    @app.job(retry=RetryPolicy(max_attempts=1))
    def link(name: str, fails: bool = False) -> None:
        """A chain's link: records its name and the batch it runs in."""
        record("link", name=name, batch=app.current_batch().id)
        if fails:
            raise RuntimeError(f"link {name} fails")

    return app


app = make_app(Settings.from_env())
