"""The command line's tables at 80 columns (a small terminal, or output piped): every id and
name is printed whole, however long, so it can be read, copied and passed to the next command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from pulsarjobs.cli import app, batches, dlq, flow, queues, scheduling, topics, workers
from pulsarjobs.flow.debounce import Window
from pulsarjobs.flow.unique import Hold
from pulsarjobs.operations.dead_letters import DeadLetter
from pulsarjobs.operations.flow_report import FlowReport
from pulsarjobs.operations.inspector import QueueStats, WorkerStatus
from pulsarjobs.operations.outbox_lag import OutboxStatus
from pulsarjobs.scheduling.schedules import ScheduleStatus
from pulsarjobs.transport.topic_stats import SubscriptionStats, TopicInfo, TopicStats
from pulsarjobs.workflows.batch_state import BatchProgress

runner = CliRunner()
NOW = datetime(2027, 1, 4, 12, tzinfo=UTC)
QUEUES = [f"nu_signups_confirmation_emails_{letter}" for letter in "abcd"]
JOB_IDS = [f"0f8c2a7e-5b1d-4c3e-9a6f-2d7b8e1c4a9{n}" for n in range(4)]  # 36 characters
WORKER = "web-production-eu-west-1a.internal:48213:9f3c2a"
TYPE = "send_signup_confirmation_email"
TOPICS = [f"{queue}-pulsarjobs-DLQ" for queue in QUEUES]
SUBSCRIPTIONS = [f"{queue}-audit-replica" for queue in QUEUES]
SCHEDULES = [f"nightly_{queue}_digest" for queue in QUEUES]
RELAY = "outbox-relay-web-production-eu-west-1a.internal:48213"


@dataclass
class FakeInspector:
    """What the commands read from the broker, without one."""

    settings: Any = field(
        default_factory=lambda: SimpleNamespace(
            full_namespace="public/pulsarjobs", subscription="pulsarjobs"
        )
    )
    connection: Any = None

    def queues(self) -> list[QueueStats]:
        return [
            QueueStats(queue, 812, 40, 20, 3, 95.0, 61.2, 4, 120.0, True, paused=queue == QUEUES[1])
            for queue in QUEUES
        ]

    def workers(self, everyone: bool = False) -> list[WorkerStatus]:
        return [
            WorkerStatus(
                worker=WORKER, state="running", host="h", pid=1, subscription="pulsarjobs",
                queues=tuple(QUEUES[:2]), concurrency=20, busy=3, processed=98210, failed=7,
                rss_bytes=80 * 2**20, started_at=NOW, last_seen=NOW, silent_seconds=1.0,
            )
        ]  # fmt: skip

    def outbox(self) -> OutboxStatus:
        return OutboxStatus(12, 3.4, 2, RELAY, 1.0)

    def dead_letters(self, queue: str, matching: Any, limit: int, order: str) -> list[DeadLetter]:
        error = "SMTPRecipientsRefused: {'ada@example.com': (550, b'5.1.1 user unknown')}"
        return [
            DeadLetter(job_id, TYPE, "failed 5 times", error, NOW, QUEUES[0], "1:2", None)
            for job_id in JOB_IDS
        ]

    def dead_count(self, queue: str) -> int:
        return 4

    def topics(self) -> list[TopicInfo]:
        return [
            TopicInfo(name, f"persistent://public/pulsarjobs/{name}", 0, "dead letters")
            for name in TOPICS
        ]

    def topic_stats(self, name: str) -> TopicStats:
        subscriptions = tuple(
            SubscriptionStats(sub, "Shared", 12, 3, 0, 2, 1.5) for sub in SUBSCRIPTIONS
        )
        topic = f"persistent://public/pulsarjobs/{name}"
        return TopicStats(name, topic, 0, 1, 2.0, 1.5, 4096, 12, "on", subscriptions)

    def batches(self) -> list[BatchProgress]:
        return [
            BatchProgress(
                job_id, "signup confirmations for the spring campaign", None,
                NOW.isoformat(), "running", 1000, 900, 3, fired=("on_complete",),
            )
            for job_id in JOB_IDS
        ]  # fmt: skip


@contextmanager
def inspecting(ctx: Any) -> Iterator[FakeInspector]:
    yield FakeInspector()


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (queues, workers, dlq, topics, batches, flow):
        monkeypatch.setattr(module, "inspecting", inspecting)
    counted = SimpleNamespace(
        exact=lambda stats: [replace(s, retrying=2, cancelled=1) for s in stats]
    )
    monkeypatch.setattr(queues, "ReadyWork", lambda inspector, read_budget: counted)
    monkeypatch.setattr(flow, "UniqueKeys", lambda connection: SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(flow, "Debounces", lambda connection: SimpleNamespace(close=lambda: None))
    monkeypatch.setattr(flow, "rate_limits", lambda inspector: {})
    monkeypatch.setattr(flow, "flow_report", lambda *args: flow_in_force())
    loaded = SimpleNamespace(schedules={}, close=lambda: None)
    monkeypatch.setattr(scheduling, "load_app", lambda reference, overrides: loaded)
    monkeypatch.setattr(scheduling, "schedule_statuses", lambda *args: schedules())


def flow_in_force() -> FlowReport:
    holds = [
        Hold(f"signup:{queue}", job_id, TYPE, queue, NOW)
        for queue, job_id in zip(QUEUES, JOB_IDS, strict=True)
    ]
    rates = {queue: 50 for queue in QUEUES}
    window = Window(f"{TYPE}/reindex:{QUEUES[1]}", "call", JOB_IDS[0], TYPE, QUEUES[2], NOW, NOW, 3)
    return FlowReport(rates, {f"smtp:{QUEUES[0]}": 4}, {}, holds, len(holds), 0, [window], 1)


def schedules() -> list[ScheduleStatus]:
    nights = ("2027-01-05T03:00:00+01:00", "2027-01-06T03:00:00+01:00")
    return [
        ScheduleStatus(name, "0 3 * * *", "Europe/Amsterdam", TYPE, "skip", nights, None, None)
        for name in SCHEDULES
    ]


def at_80_columns(*command: str) -> str:
    result = runner.invoke(app, list(command), env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.stdout


CASES = {
    "queues": (["queues"], [*QUEUES, RELAY]),
    "workers": (["workers"], [WORKER, *QUEUES[:2]]),
    "dlq list": (["dlq", "list", QUEUES[0]], [*JOB_IDS, TYPE]),
    "topics list": (["topics", "list"], TOPICS),
    "topics stats": (["topics", "stats", TOPICS[0]], SUBSCRIPTIONS),
    "batches": (["batches"], JOB_IDS),
    "flow": (
        ["flow"],
        [
            *QUEUES,
            *JOB_IDS,
            TYPE,
            f"signup:{QUEUES[0]}",
            f"smtp:{QUEUES[0]}",
            f"reindex:{QUEUES[1]}",
        ],
    ),
    "cron list": (["cron", "list", "myproject.jobs:app"], [*SCHEDULES, TYPE]),
}


@pytest.mark.parametrize(("command", "names"), CASES.values(), ids=CASES.keys())
def test_every_id_and_name_is_printed_whole_at_80_columns(
    command: list[str], names: list[str]
) -> None:
    shown = at_80_columns(*command)
    cut = [name for name in names if name not in shown]
    assert not cut, f"cut at 80 columns: {cut}\n{shown}"
