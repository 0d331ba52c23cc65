"""The jobs the reliability scenarios run, in `pulsarjobs worker` processes and in the test.

Every job that completes records its run (recorder.py) as its last step.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

from pulsarjobs import App, Debounce, Durable, GroupOptions, Member, Settings, current_job
from tests.reliability.recorder import Recorder

FIX_VARIABLE = "PULSARJOBS_RELIABILITY_FIX"  # a file: once it exists, broken jobs work
CALLBACKS = "callbacks"  # the queue of batches' callbacks
FAIR = "reports"  # the fair queue of test_fair_queueing.py
STEPS = 5  # the steps of a durable job of test_durable_kill.py
# The groups of test_group_kill.py.
GROUPS = GroupOptions(max_size=50, grace=timedelta(seconds=1), max_delay=timedelta(seconds=5))


@functools.cache
def recorder() -> Recorder:
    return Recorder.from_env()


def record_run(started: float) -> None:
    job = current_job()
    recorder().ran(job.id, job.attempt, started, job.run_at)


def items_after(count: int, cursor: int | None) -> Iterator[tuple[int, int]]:
    """Items 0..count-1 past `cursor`, each with the cursor past it."""
    return ((item + 1, item) for item in range(cursor or 0, count))


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

    def step_work(job_id: str, name: str, milliseconds: int, previous: str | None) -> str:
        """A durable job's step: records that it ran, and after which value of the step before
        (stored, since this one runs), and returns a token of this run alone."""
        token = uuid.uuid4().hex
        recorder().event("step_ran", job=job_id, step=name, token=token, started=time.time(),
                         previous=previous)  # fmt: skip
        time.sleep(milliseconds / 1000)
        return token

    @app.job(durable=True)
    def five_steps(ctx: Durable, milliseconds: int) -> None:
        """Records, after each step, the token its value holds: that of the run now stored."""
        started, token = time.time(), None
        for n in range(1, STEPS + 1):
            name = f"step-{n}"
            token = ctx.step_sync(name, step_work, ctx.job_id, name, milliseconds, token)
            recorder().event("step_stored", job=ctx.job_id, step=name, token=token, at=time.time())
        record_run(started)

    @app.job(durable=True)
    def sleeps(ctx: Durable, seconds: float) -> None:
        """Records each run's start, and the time its sleep was over (test_durable_kill.py)."""
        recorder().event("sleeper_ran", job=ctx.job_id, started=time.time())
        ctx.sleep_sync(seconds)
        record_run(time.time())  # started: when the run went on past its sleep

    @app.job(durable=True)
    def iterate_items(ctx: Durable, count: int, every: int, micros: int) -> None:
        """Works through items 0..count-1 with ctx.iterate_sync, a line per item processed in
        a file of this process (no fsync: a kill -9 loses no written line, only a power cut
        would), `micros` µs of work each (test_iteration_kill.py)."""
        started = time.time()
        noted = recorder().directory / f"items-{os.getpid()}-{uuid.uuid4().hex[:8]}.txt"
        with noted.open("a", buffering=1) as lines:
            for item in ctx.iterate_sync("items", functools.partial(items_after, count),
                                         every=every, seconds=3600):  # fmt: skip
                time.sleep(micros / 1_000_000)
                lines.write(f"{item}\n")
        record_run(started)

    @app.job(debounce=timedelta(seconds=5))
    def reindex_last(caller: int, n: int) -> None:
        """Debounced, the last call's arguments (test_debounce_kill.py)."""
        recorder().event("debounced_ran", job=current_job().id, key="last", caller=caller, n=n)

    @app.job(debounce=Debounce(timedelta(seconds=5), keep="first"))
    def reindex_first(caller: int, n: int) -> None:
        """Debounced, the first call's arguments (test_debounce_kill.py)."""
        recorder().event("debounced_ran", job=current_job().id, key="first", caller=caller, n=n)

    @app.job(queue=FAIR, fair_key=lambda tenant: tenant)
    def tenant_report(tenant: str) -> None:
        """Records which key's job started, and when (test_fair_queueing.py)."""
        recorder().event("fair_started", key=tenant, started=time.time(), pid=os.getpid())
        record_run(time.time())

    @app.periodic("* * * * * *", name="every_second", queue="ticks", missed="all")
    def every_second() -> None:
        record_run(time.time())

    @app.job(group=GROUPS)
    def collects(members: list[Member]) -> None:
        """Each member's arguments: its number and when it was enqueued (Unix time). Records
        each member's run, and the group: its size, keys, and how long its first member waited
        for the group to be stored."""
        started, job = time.time(), current_job()
        enqueued = min(float(member.args[1]) for member in members)  # type: ignore[arg-type]
        recorder().event("group", size=len(members), keys=sorted({m.key for m in members}),
                         waited=job.envelope.created_at.timestamp() - enqueued,
                         stored=job.envelope.created_at.timestamp())  # fmt: skip
        for member in members:
            recorder().ran(member.id, job.attempt, started, None)

    return app


app = make_app(Settings.from_env())
