"""Grouped jobs the integration tests run in worker processes; each group's run appends one
JSON line to PULSARJOBS_TEST_RECORD (see pipeline.py) with its members."""

from __future__ import annotations

from datetime import timedelta

from pulsarjobs.app import App
from pulsarjobs.grouping.options import GroupOptions, Member
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.settings import Settings
from tests.apps.pipeline import record

MAX_SIZE = 10
GROUPS = GroupOptions(max_size=MAX_SIZE, grace=timedelta(seconds=1), max_delay=timedelta(seconds=4))
POISON = -1  # a member that fails every run it is in


def make_app(settings: Settings) -> App:
    app = App(settings)

    @app.job(group=GROUPS, retry=RetryPolicy(max_attempts=2, initial_delay=0.2, jitter=0.0))
    def collect(members: list[Member]) -> None:
        numbers = [m.args[0] for m in members]
        record("group", members=[m.id for m in members], keys=sorted({m.key for m in members}),
               numbers=numbers)  # fmt: skip
        if POISON in numbers:
            raise ValueError("a poisoned member")

    return app


app = make_app(Settings.from_env())
