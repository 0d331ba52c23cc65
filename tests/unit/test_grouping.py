"""Grouped jobs under the in-memory TestRunner, and their options: members meet in groups by
key, a group runs when full, when its grace passes quietly or when its max_delay passes; a
failed group is retried whole, and split at its last attempt so a poisoned member dies alone."""

from datetime import timedelta

import pytest

from pulsarjobs.app import App
from pulsarjobs.errors import ConfigurationError
from pulsarjobs.grouping.options import GroupOptions, Member
from pulsarjobs.operations.pending_groups import PendingGroups, pending_groups
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.testing import TestRunner
from pulsarjobs.wire.envelope import ArgumentError, Envelope

SECOND = timedelta(seconds=1)


def test_members_meet_by_key_and_a_full_group_runs_at_once(app: App, runner: TestRunner) -> None:
    runs: list[list[Member]] = []

    @app.job(group=GroupOptions(max_size=3, grace=10 * SECOND, max_delay=60 * SECOND))
    def send(members: list[Member]) -> None:
        runs.append(members)

    ids = [send.enqueue_to("a", n) for n in range(3)]
    send.enqueue_to("b", 99, subject="hi")
    start = runner.now
    runner.run_all(until=start)  # nothing is due yet but the full group
    assert [[m.args for m in run] for run in runs] == [[(0,), (1,), (2,)]]
    assert [m.id for m in runs[0]] == ids and {m.key for m in runs[0]} == {"a"}
    runner.run_all()  # b's group of one runs once its grace passed
    assert runs[1] == [Member(runs[1][0].id, "b", (99,), {"subject": "hi"})]
    assert runner.now - start == 10 * SECOND
    assert runner.groups.pending == [] and len(runner.groups.stored) == 2


def test_cancel_by_group_key_takes_those_members_out_of_their_group(
    app: App, runner: TestRunner
) -> None:
    runs: list[list[Member]] = []

    @app.job(group=GroupOptions(max_size=10, grace=SECOND, max_delay=60 * SECOND))
    def send(members: list[Member]) -> None:
        runs.append(members)

    for n in range(3):
        send.enqueue_to("deleted-user", n)
    kept = send.enqueue_to("other-user", 9)
    assert app.cancel_matching(group="deleted-user") == 3
    runner.run_all()
    assert [[m.id for m in run] for run in runs] == [[kept]]


def test_grace_restarts_with_each_member_until_max_delay(app: App, runner: TestRunner) -> None:
    runs: list[int] = []

    @app.job(group=GroupOptions(max_size=100, grace=2 * SECOND, max_delay=5 * SECOND))
    def send(members: list[Member]) -> None:
        runs.append(len(members))

    start = runner.now
    for _ in range(4):  # a member every second: grace never passes quietly
        send.enqueue(1)
        runner.advance(SECOND)
        runner.run_all(until=runner.now)
    assert runs == []
    send.enqueue(1)
    runner.run_all()
    assert runs == [5] and runner.now - start == 5 * SECOND  # max_delay since the first


def test_a_failed_group_is_retried_then_split_so_only_the_poisoned_member_dies(
    app: App, runner: TestRunner
) -> None:
    seen: list[list[int]] = []

    @app.job(
        group=GroupOptions(max_size=4, grace=SECOND, max_delay=SECOND),
        retry=RetryPolicy(max_attempts=2, initial_delay=1, jitter=0),
    )
    def send(members: list[Member]) -> None:
        numbers = [int(m.args[0]) for m in members]  # type: ignore[arg-type]
        seen.append(numbers)
        if 13 in numbers:
            raise ValueError("bad address")

    for n in (1, 13, 3, 4):
        send.enqueue(n)
    runner.run_all()
    assert seen[:2] == [[1, 13, 3, 4]] * 2  # the group, retried whole
    assert sorted(seen[2:]) == [[1], [3], [4], [13], [13]]  # then one by one, with fresh attempts
    [dead] = runner.dead
    assert dead.args == ([{"id": dead.args[0][0]["id"], "key": "", "args": [13],  # type: ignore[index]
                           "kwargs": {}}],)  # fmt: skip
    assert len(runner.dead_letters) == 1


def test_a_group_that_kills_its_worker_process_is_dead_whole_after_three_deaths(
    app: App, runner: TestRunner
) -> None:
    runs: list[int] = []

    @app.job(group=GroupOptions(max_size=3))
    def send(members: list[Member]) -> None:
        runs.append(len(members))

    runner.crash_process_in(send, times=3)  # the queue's crash rules, as for any job
    send.enqueue_many([("k", send.call(n)) for n in range(3)])
    runner.run_all()
    assert runs == [3, 3, 3]
    [dead] = runner.dead
    assert dead.last_error is not None and dead.last_error.type == "pulsarjobs.KilledWorker"
    assert len(dead.args[0]) == 3  # type: ignore[arg-type]


def test_async_handlers_take_their_members_too(app: App, runner: TestRunner) -> None:
    sizes: list[int] = []

    @app.job(group=GroupOptions(max_size=2))
    async def send(members: list[Member]) -> None:
        sizes.append(len(members))

    send.enqueue(1)
    send.enqueue_to("", 2)
    runner.run_all()
    assert sizes == [2]


def test_plain_jobs_beside_grouped_ones_run_as_before(app: App, runner: TestRunner) -> None:
    ran: list[str] = []

    @app.job
    def plain(name: str) -> None:
        ran.append(name)

    @app.job(group=GroupOptions(max_size=2))
    def send(members: list[Member]) -> None:
        ran.append(f"group of {len(members)}")

    plain.enqueue("a")
    send.enqueue_many([("k", send.call(1)), ("k", send.call(2))])
    runner.run_all()
    assert sorted(ran) == ["a", "group of 2"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(max_size=0), "group max_size must be >= 1, got 0"),
        (dict(grace=timedelta(0)), "group grace must be positive"),
        (dict(grace=10 * SECOND, max_delay=SECOND), "must be at least its grace"),
    ],
)
def test_bad_group_options_fail_where_declared(options: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        GroupOptions(**options)


def test_a_grouped_job_called_as_a_plain_job_is_refused_in_one_line(
    app: App, runner: TestRunner
) -> None:
    @app.job(group=GroupOptions())
    def send(members: list[Member]) -> None: ...

    with pytest.raises(ArgumentError, match=r"with send.enqueue\(...\) or .enqueue_to\(key, ...\)"):
        app.enqueue(send.call("ada@example.com"))
    assert runner.pending == []


def test_a_grouped_job_cannot_be_durable(app: App) -> None:
    with pytest.raises(ConfigurationError, match="a grouped job cannot be durable"):

        @app.job(durable=True, group=GroupOptions())
        def send(ctx: object, members: list[Member]) -> None: ...


class _Message:
    def __init__(self, key: str) -> None:
        self.key = key

    def partition_key(self) -> str:
        return self.key


def test_pending_groups_count_members_and_their_groups_as_far_as_read() -> None:
    backlog = [_Message(key) for key in ("a", "b", "a", "c")]
    envelope = Envelope(id="1", type="send", queue="default")
    counted = pending_groups(4, lambda: backlog, lambda _: envelope, scan_limit=10)
    assert counted == PendingGroups(4, 3) and str(counted) == "4 in 3"
    cut = pending_groups(4, lambda: backlog, lambda _: envelope, scan_limit=2)
    assert cut == PendingGroups(4, 2, exact=False) and str(cut) == "4 in ≥2"
    assert str(pending_groups(0, lambda: backlog, lambda _: envelope, 10)) == "-"
