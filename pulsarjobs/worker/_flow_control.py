"""The worker's side of flow control (docs/flow-control.md): giving back the unique keys of the
jobs it settles, and the concurrency slots its limited jobs take.

Only jobs that ask for it come here: the runners look at one field of the envelope. Unique keys
are given back on a thread of their own, after the job is acknowledged (taking the key's lock
costs round trips the next job should not wait for).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import structlog

from pulsarjobs.app_view import AppView
from pulsarjobs.flow.limits import LimitSlots
from pulsarjobs.logs import error_text
from pulsarjobs.wire.envelope import Envelope
from pulsarjobs.wire.verdicts import Outcome

log = structlog.get_logger("pulsarjobs.flow")


class WorkerFlow:
    def __init__(self, app: AppView, worker: str, concurrency: int) -> None:
        self.app = app
        self.slots = LimitSlots(app, worker, concurrency)
        self._releases = ThreadPoolExecutor(1, thread_name_prefix="pulsarjobs-unique")

    def settled(self, outcome: Outcome) -> None:
        """A job with a unique key was settled: give its key back unless it is still to run."""
        if not outcome.kind.policy.keeps_unique_key:
            self._releases.submit(self._release, outcome.envelope)

    def _release(self, envelope: Envelope) -> None:
        assert envelope.unique_key is not None
        try:
            self.app.unique_keys.release(envelope.unique_key, envelope.id)
        except Exception as exc:  # it expires at its unique_for
            log.warning("could not give back a unique key", key=envelope.unique_key,
                        job_id=envelope.id, error=error_text(exc))  # fmt: skip

    def stop(self) -> None:
        """Give back the keys of the jobs settled so far (blocks), then every slot."""
        self._releases.shutdown(wait=True)
        self.slots.close()
