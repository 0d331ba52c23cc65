"""Jobs the integration tests run, in the test process or in worker subprocesses.

Each run appends one JSON line to the file named by PULSARJOBS_TEST_RECORD (appends of a few
hundred bytes are atomic), so a test can see what every worker process did.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any

from pulsarjobs.app import App
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.settings import Settings
from pulsarjobs.worker.execution import current_job

FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.5, multiplier=2.0, jitter=0.0)
_running = 0
_running_lock = threading.Lock()


def record(event: str, **fields: Any) -> None:
    job = current_job()
    line = {
        "event": event,
        "id": job.id,
        "type": job.type,
        "queue": job.queue,
        "attempt": job.attempt,
        "pid": os.getpid(),
        "t": time.time(),
        **fields,
    }
    path = os.environ["PULSARJOBS_TEST_RECORD"]
    with open(path, "a") as out:
        out.write(json.dumps(line) + "\n")


def enter() -> int:
    global _running
    with _running_lock:
        _running += 1
        return _running


def leave() -> None:
    global _running
    with _running_lock:
        _running -= 1


def make_app(settings: Settings) -> App:
    app = App(settings)

    for queue in ("critical", "default", "low"):

        @app.job(name=f"{queue}_job", queue=queue)
        def prioritized(n: int) -> None:
            record("start")
            time.sleep(0.002)

    @app.job
    def slow(n: int) -> None:
        record("start")
        time.sleep(0.05)
        record("end")

    @app.job(retry=FAST_RETRY)
    def fails_twice() -> None:
        record("start")
        if current_job().attempt < 3:
            raise RuntimeError(f"failure {current_job().attempt}")

    @app.job(retry=FAST_RETRY)
    def always_fails(reason: str) -> None:
        record("start")
        raise ValueError(reason)

    # Each retry waits 2 s on the broker: long enough to be waiting there through a restart
    # (test_pipeline.py); not growing, as the count of attempts is what is checked.
    @app.job(retry=RetryPolicy(max_attempts=4, initial_delay=2.0, multiplier=1.0, jitter=0.0))
    def fails_slowly() -> None:
        record("start")
        raise RuntimeError("still failing")

    @app.job
    def sync_overlap() -> None:
        record("start", running=enter())
        time.sleep(0.2)
        leave()

    @app.job
    async def async_overlap() -> None:
        record("start", running=enter())
        await asyncio.sleep(0.2)
        leave()

    @app.job(timeout=0.2, retry=RetryPolicy(max_attempts=1))
    async def too_slow_async() -> None:
        record("start")
        await asyncio.sleep(5)
        record("end")

    @app.job(timeout=0.2, retry=RetryPolicy(max_attempts=1))
    def too_slow_sync() -> None:
        record("start")
        time.sleep(1)
        record("end")

    @app.periodic("* * * * * *", name="every_second", queue="ticks", missed="all")
    def every_second() -> None:
        record("start")

    @app.job
    async def wedge(seconds: float) -> None:
        """Blocks its worker's event loop, as a blocking call in an `async def` does."""
        record("start")
        time.sleep(seconds)

    @app.job
    async def hold(seconds: float) -> None:
        record("start")
        await asyncio.sleep(seconds)
        record("end")

    @app.job(retry=FAST_RETRY)
    def hold_sync_then_fail(seconds: float) -> None:
        record("start")
        time.sleep(seconds)
        record("end")
        raise RuntimeError("failed after holding")

    @app.job
    def scheduled(n: int) -> None:
        run_at = current_job().run_at
        record("start", run_at=run_at.timestamp() if run_at else None)

    for name in ("breaks", "also_breaks"):

        @app.job(name=name, max_attempts=1)
        def breaks(n: int, kind: str) -> None:
            """Dies at once with a ValueError or a KeyError, by `kind`, until it is fixed: until
            the file PULSARJOBS_TEST_FIX names exists."""
            record("start", n=n)
            fix = os.environ.get("PULSARJOBS_TEST_FIX")
            if fix and os.path.exists(fix):
                return
            raise (ValueError if kind == "value" else KeyError)(f"broken {kind} {n}")

    @app.job
    def greet(name: str, punctuation: str = "!") -> None:
        record("start", greeting=f"hello {name}{punctuation}")

    return app


app = make_app(Settings.from_env())
