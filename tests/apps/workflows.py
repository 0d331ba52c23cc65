"""Jobs with results and chains that the workflow tests run, in the test process or in worker
subprocesses (`tests.apps.workflows:app`)."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path

from pulsarjobs.app import App
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.settings import Settings
from pulsarjobs.worker.execution import current_job

KEEP = timedelta(hours=1)
SHORT_KEEP = timedelta(seconds=2)
ONCE = RetryPolicy(max_attempts=1)


def make_app(settings: Settings) -> App:
    app = App(settings)

    @app.job(keep_result=KEEP)
    def add(a: int, b: int) -> int:
        return a + b

    @app.job(keep_result=KEEP)
    async def describe(name: str) -> dict[str, object]:
        return {"name": name, "sizes": [1, 2.5, None], "raw": b"\x00\x01"}

    @app.job(keep_result=KEEP, retry=ONCE)
    def fails(reason: str) -> None:
        raise ValueError(reason)

    @app.job(keep_result=SHORT_KEEP)
    def short_lived() -> str:
        return "soon gone"

    @app.job(keep_result=KEEP)
    def unencodable() -> object:
        return {1, 2}

    @app.job
    def no_result() -> int:
        return 1

    @app.job(retry=ONCE)
    def link(name: str, previous: object = None) -> str:
        """A chain link: notes that it ran (a file per run); fails when named "broken", until
        a file "fixed" is there."""
        runs = Path(os.environ["PULSARJOBS_TEST_RECORD"])
        runs.mkdir(exist_ok=True)
        (runs / f"{name}-{current_job().id}-{uuid.uuid4().hex}").touch()
        if name == "broken" and not (runs / "fixed").exists():
            raise RuntimeError("link broke")
        return f"{name}<{previous}>" if previous is not None else name

    @app.job
    def passes(previous: object, suffix: str) -> str:
        return f"{previous}{suffix}"

    return app


app = make_app(Settings.from_env())
