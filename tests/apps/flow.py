"""Jobs with flow control (unique, ordered, limited, rate-limited) that the integration tests run
in worker processes; each run appends a JSON line to PULSARJOBS_TEST_RECORD (see pipeline.py).

    python -m tests.apps.flow unique KEYS   # enqueue unique_job(0..KEYS-1), print the ids
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta

from pulsarjobs.app import App
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.settings import Settings
from pulsarjobs.worker.execution import current_job
from tests.apps.pipeline import record


def make_app(settings: Settings) -> App:
    app = App(settings)

    @app.job(unique_for=timedelta(minutes=10))
    def unique_job(key: int) -> None:
        record("start", key=key)

    @app.job(retry=RetryPolicy(max_attempts=3, initial_delay=0.2, jitter=0.0))
    def ordered_step(key: int, n: int, fail_first: bool = False) -> None:
        record("start", key=key, n=n)
        time.sleep(0.001)
        if fail_first and current_job().attempt == 1:
            record("end", key=key, n=n)
            raise RuntimeError("first attempt fails")
        record("end", key=key, n=n)

    @app.job(concurrency_limit=3)
    def limited(n: int) -> None:
        record("start", n=n)
        time.sleep(0.2)
        record("end", n=n)

    @app.job(rate_limit=20)
    def rate_limited(n: int) -> None:
        record("start", n=n)

    @app.job(queue="rated")
    def rated(n: int) -> None:
        record("start", n=n)

    return app


app = make_app(Settings.from_env())


if __name__ == "__main__" and sys.argv[1] == "unique":
    ids = app.enqueue_many([app.jobs["unique_job"].call(key) for key in range(int(sys.argv[2]))])
    print(json.dumps(ids))
    app.close()
