"""The durable job of the signals scenario (test_signals.py), and the sender processes.

`awaits` waits for the signal of its key and records, past the wait, how it got there: the
payload or that it timed out, and which copy of the job went on (its lineage, signals.py).
`python -m tests.reliability.signals_app PLAN RECORD` sends the signals a JSON plan lists
(`[[key, payload], ...]`) with `app.signal`, one after the other, and records each (when it was
sent, when it returned, how many waiting jobs it resumed) in a file of its own under RECORD.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from pulsarjobs import App, Durable, Settings, WaitTimedOut, current_job
from pulsarjobs.workflows.signals import lineage_of
from tests.reliability.recorder import DIRECTORY_VARIABLE, Recorder

KEEP = timedelta(hours=1)  # how long each signal is kept: past every job of a run


class SignalRecorder(Recorder):
    """The record of the scenario: a resumption is also a run (recorder.py), with more fields,
    and a signal sent is a line of the sender's own record."""

    def resumed(self, key: str, payload: Any, timed_out: bool) -> None:
        job, now = current_job(), time.time()
        line = {"ran": job.id, "attempt": job.attempt, "pid": os.getpid(), "started": now,
                "run_at": job.run_at.timestamp() if job.run_at is not None else None,
                "key": key, "payload": payload, "timed_out": timed_out,
                "copy": lineage_of(job)}  # fmt: skip
        self._append(json.dumps(line) + "\n")

    def sent(self, key: str, sent: float, returned: float, resumed: int) -> None:
        line = {"signal": key, "sent": sent, "returned": returned, "resumed": resumed}
        self._append(json.dumps(line) + "\n")


@functools.cache
def recorder() -> SignalRecorder:
    return SignalRecorder(os.environ[DIRECTORY_VARIABLE])


def make_app(settings: Settings) -> App:
    app = App(settings)

    @app.job(durable=True)
    async def awaits(ctx: Durable, key: str, timeout: float) -> None:
        try:
            payload = await ctx.wait_for(key, timeout=timeout)
        except WaitTimedOut:
            recorder().resumed(key, None, timed_out=True)
            return
        recorder().resumed(key, payload, timed_out=False)

    return app


app = make_app(Settings.from_env())


def send(plan: Path, record: Path) -> None:
    """Send every signal of the plan, in its order, recording each once it returned."""
    signals = json.loads(plan.read_text())
    sender = SignalRecorder(record)
    for key, payload in signals:
        sent = time.time()
        resumed = app.signal(key, payload, keep=KEEP)
        sender.sent(key, sent, time.time(), resumed)
    app.close()


if __name__ == "__main__":
    send(Path(sys.argv[1]), Path(sys.argv[2]))
