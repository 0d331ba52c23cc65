"""What the Pulsar client's own lines become in pulsarjobs' logs (lines as the client writes)."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from pulsarjobs.transport.client_log import ClientLog

REFUSED = (
    "2026-01-02 10:00:01.071 ERROR [1401] ClientConnection:485 | [<none> -> pulsar://127.0.0.1:6650]"
    " Failed to establish connection to 0.0.0.0:0: Connection refused"
)
RETRY = (
    "2026-01-02 10:00:01.071 INFO  [1401] RetryableOperation:112 | Reschedule get-broker-"
    "persistent://public/pulsarjobs/default for 196 ms, remaining time: 9704 ms"
)
UNANSWERED = (
    "2026-01-02 10:00:09.450 ERROR [1401] ClientConnection:626 | [127.0.0.1:46344 -> "
    "127.0.0.1:6650] Connection to 127.0.0.1:6650  was not established in 5000 ms"
)
TCP_UP = (
    "2026-01-02 10:00:09.000 INFO  [1401] ClientConnection:420 | [127.0.0.1:46344 -> "
    "127.0.0.1:6650] Connected to broker"
)
SERVES = (
    "2026-01-02 10:00:12.000 INFO  [1401] ConsumerImpl:336 | [persistent://public/pulsarjobs/"
    "default, pulsarjobs, 0] Created consumer on broker [127.0.0.1:40866 -> 127.0.0.1:6650] "
)
LOOKUP_FAILED = (
    "2026-01-02 10:00:00.378 ERROR [1401] BinaryProtoLookupService:67 | Lookup failed for "
    "persistent://public/pulsarjobs/default, result BrokerMetadataError No available broker found."
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def told(lines: list[str], clock: Clock | None = None) -> list[dict[str, Any]]:
    client_log = ClientLog(clock or Clock())
    with capture_logs() as events:
        for line in lines:
            client_log.handle(line + "\n")
    return [e for e in events if e["log_level"] != "debug"]


def test_an_outage_is_one_warning_then_one_line_when_the_broker_serves_again() -> None:
    clock = Clock()
    lines = [REFUSED, RETRY, REFUSED, LOOKUP_FAILED, TCP_UP, UNANSWERED, REFUSED, SERVES]
    events = told(lines, clock)
    assert [(e["log_level"], e["event"], e["broker"]) for e in events] == [
        ("warning", "cannot reach the Pulsar broker; the client keeps retrying", "127.0.0.1:6650"),
        ("info", "connection to the broker is back", "127.0.0.1:6650"),
    ]
    assert events[0]["error"] == "Connection refused"


def test_a_second_outage_is_told_again() -> None:
    events = told([REFUSED, SERVES, REFUSED, SERVES])
    assert [e["event"] for e in events] == [
        "cannot reach the Pulsar broker; the client keeps retrying",
        "connection to the broker is back",
    ] * 2


def test_a_broker_named_by_host_is_back_when_its_address_serves() -> None:
    by_name = REFUSED.replace("pulsar://127.0.0.1:6650", "pulsar://localhost:6650")
    events = told([by_name, SERVES])
    assert [(e["event"], e["broker"]) for e in events][-1] == (
        "connection to the broker is back",
        "localhost:6650",
    )


def test_a_repeated_client_warning_is_told_once_a_minute_with_the_count_hidden() -> None:
    clock = Clock()
    client_log = ClientLog(clock)
    with capture_logs() as events:
        for _ in range(5):
            client_log.handle(LOOKUP_FAILED)
            clock.now += 1
        clock.now += 60
        client_log.handle(LOOKUP_FAILED)
    assert [(e["log_level"], e.get("repeated")) for e in events] == [
        ("warning", None),
        ("warning", 4),
    ]
    assert events[0]["source"] == "BinaryProtoLookupService:67"


def test_routine_lines_and_other_text_are_debug() -> None:
    assert told([RETRY, TCP_UP, "a continuation line"]) == []


def test_a_job_the_worker_cannot_decrypt_is_an_error_naming_the_key_setting() -> None:
    line = (
        "2026-01-02 10:00:00.378 WARN  [1401] ConsumerImpl:861 | [persistent://public/pulsarjobs/"
        "default, pulsarjobs, 2] Message delivery failed since CryptoKeyReader is not "
        "implemented to consume encrypted message"
    )
    with capture_logs() as logs:
        ClientLog().handle(line)
    [event] = logs
    assert event["log_level"] == "error"
    assert "PULSARJOBS_ENCRYPTION_PRIVATE_KEY" in event["event"]
    assert "stays stored" in event["event"]
