"""The job index says once, in the log, that the broker refused its entries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulsar
from structlog.testing import capture_logs

from pulsarjobs import Settings
from pulsarjobs.transport.job_index import JobIndex


class Connection:
    settings = Settings()
    in_memory = False


class Producer:
    """Fails or stores every entry as the broker does (`result`), and answers those sent
    with a callback."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.sent: list[str] = []

    def send_async(
        self, value: bytes, answer: Callable[[Any, Any], None] | None, partition_key: str
    ) -> None:
        self.sent.append(partition_key)
        if answer is not None:
            answer(self.result, None)

    def flush(self) -> None: ...

    def close(self) -> None: ...


def warnings_after_settling(result: Any) -> tuple[list[str], list[str]]:
    """(what was sent, the index's warnings) after three jobs settled and the index closed."""
    index = JobIndex(lambda: Connection())  # type: ignore[arg-type, return-value]
    producer = Producer(result)
    index._producer = producer  # type: ignore[assignment]
    with capture_logs() as logs:
        for job_id in ("a", "b", "c"):
            index.settled(job_id)
        index.close()
    return producer.sent, [log["event"] for log in logs if log["log_level"] == "warning"]


def test_refused_entries_are_said_once() -> None:
    sent, warnings = warnings_after_settling(pulsar.Result.Timeout)
    assert sent == ["a", "b", "c"]
    assert warnings == ["cannot write the job index"]


def test_stored_entries_say_nothing() -> None:
    sent, warnings = warnings_after_settling(pulsar.Result.Ok)
    assert sent == ["a", "b", "c"]
    assert warnings == []
