"""The jobs the reliability scenarios run, in `pulsarjobs worker` processes and in the test.

Every job that completes records its run (recorder.py) as its last step.
"""

from __future__ import annotations

import functools
import os
import time

from pulsarjobs import App, Settings, current_job
from tests.reliability.recorder import Recorder

FIX_VARIABLE = "PULSARJOBS_RELIABILITY_FIX"  # a file: once it exists, broken jobs work
CALLBACKS = "callbacks"  # the queue of batches' callbacks


@functools.cache
def recorder() -> Recorder:
    return Recorder.from_env()


def record_run(started: float) -> None:
    job = current_job()
    recorder().ran(job.id, job.attempt, started, job.run_at)


def make_app(settings: Settings) -> App:
    app = App(settings)

    @app.job
    def work(milliseconds: int) -> None:
        started = time.time()
        if milliseconds:
            time.sleep(milliseconds / 1000)
        record_run(started)

    @app.job
    def kills_its_process() -> None:
        os._exit(1)  # as a crash in a C extension would: no exception, no goodbye

    @app.job
    def counts(n: int) -> None:
        record_run(time.time())

    @app.job(max_attempts=1)
    def fails_until_fixed(n: int) -> None:
        """Fails, and is dead-lettered at once, until the file FIX_VARIABLE names exists."""
        started = time.time()
        if not os.path.exists(os.environ[FIX_VARIABLE]):
            raise RuntimeError(f"broken {n}")
        record_run(started)

    @app.job(queue=CALLBACKS)
    def batch_done(kind: str) -> None:
        """A batch's callback (test_batch_kill.py)."""
        record_run(time.time())

    @app.periodic("* * * * * *", name="every_second", queue="ticks", missed="all")
    def every_second() -> None:
        record_run(time.time())

    return app


app = make_app(Settings.from_env())
