"""A producer that keeps enqueueing from a thread while a scenario breaks the broker.

It alternates ten jobs one by one with a group of a hundred. An enqueue that returned is
recorded (its jobs must not get lost); one that raised is counted and not recorded — the
promise under test is that the client blocks or raises, never that it returns and drops.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from pulsarjobs.errors import PulsarJobsError
from tests.integration.helpers import wait_until
from tests.reliability.conftest import Scenario

ONE_BY_ONE = 10
GROUP = 100


@dataclass
class BackgroundProducer:
    scenario: Scenario
    milliseconds: int = 0  # how long each job runs
    returned: int = 0  # jobs whose enqueue returned
    raised: int = 0  # enqueue calls that raised
    errors: list[str] = field(default_factory=list)  # what the raises said
    unexpected: list[str] = field(default_factory=list)  # raises that were no PulsarJobsError
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> BackgroundProducer:
        self._thread = threading.Thread(target=self._produce, name="producer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(120)  # a blocked enqueue raises after its send timeout (30 s)
            assert not self._thread.is_alive(), "the producer did not stop within 120 s"

    def wait_for(self, more: int, timeout: float = 120) -> None:
        """Until the enqueues of `more` jobs more have returned: the producer gets through."""
        target = self.returned + more
        wait_until(lambda: self.returned >= target, timeout, interval=0.2)

    def _produce(self) -> None:
        work = self.scenario.app.jobs["work"]
        while not self._stopping.is_set():
            for batch, count in ((1, ONE_BY_ONE), (GROUP, GROUP)):
                calls = [work.call(self.milliseconds) for _ in range(count)]
                try:
                    self.returned += len(self.scenario.enqueue(calls, batch=batch))
                except Exception as exc:
                    self.raised += 1
                    self.errors.append(str(exc))
                    if not isinstance(exc, PulsarJobsError):
                        self.unexpected.append(repr(exc))
                    time.sleep(0.5)  # as a caller would before trying again
