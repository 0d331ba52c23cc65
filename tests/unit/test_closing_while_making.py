"""A process stops although its connection is closed while one of its threads makes a producer.

Seen in an outbox relay stopped by SIGTERM: the CLI closed the connection (which also ends a
wait for leadership) while the job index's thread was making its producer. The client never
answered that call; the relay thread waited for the index, and the process for both, for good.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from structlog.testing import capture_logs

from pulsarjobs import Settings
from pulsarjobs.transport import job_index
from pulsarjobs.transport.answers import Acks
from pulsarjobs.transport.connection import Connection
from pulsarjobs.transport.job_index import JobIndex


def test_a_close_waits_for_a_producer_being_made_on_another_thread() -> None:
    connection = Connection(Settings(service_url="pulsar://127.0.0.1:1"))  # never reached
    events: list[str] = []

    def make(client: Any) -> None:
        events.append("making")
        time.sleep(0.3)  # the client's round trip to the broker
        events.append("made")

    maker = threading.Thread(target=connection.made, args=(make,))
    maker.start()
    while not events:
        time.sleep(0.01)
    connection.close()
    events.append("closed")
    maker.join(5)
    assert events == ["making", "made", "closed"]


class StuckConnection:
    """A connection whose client never answers the index's producer."""

    settings = Settings()
    in_memory = False

    def __init__(self) -> None:
        self.released = threading.Event()

    def keep_marks(self, topic: str) -> None: ...

    def made(self, make: Any) -> Any:
        self.released.wait()
        raise RuntimeError("closed")


def test_a_job_index_stuck_in_its_client_lets_its_app_close_and_says_so(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(job_index, "CLOSE_WAIT_SECONDS", 0.5)
    connection = StuckConnection()
    index = JobIndex(lambda: connection)  # type: ignore[arg-type, return-value]
    index.settled("a")  # its thread starts, to empty the entry
    try:
        time.sleep(0.2)  # the thread is in `made` now
        with capture_logs() as logs:
            index.close()
        warnings = [log["event"] for log in logs if log["log_level"] == "warning"]
        assert warnings == [
            "the job index's last entries are not written: it did not finish within the time"
            " allowed; this process writes no more entries"
        ]
        # The app used again: its jobs are not indexed, and nothing piles up for a thread
        # that will never send it.
        assert type(index.acks("b", "q", "topic")) is Acks
        for number in range(1000):
            index.note((f"job-{number}", "q", "topic", None))
            index.settled(f"job-{number}")
        assert not index._notes and not index._settling
    finally:
        connection.released.set()  # the thread ends (its warning is not this test's to see)
        with capture_logs():
            if index._thread is not None:
                index._thread.join(5)
