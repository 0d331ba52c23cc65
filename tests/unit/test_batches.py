"""Batches without a broker: the state workers keep (idempotent, merged from every worker's
record) and the whole flow under the in-memory TestRunner."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from datetime import timedelta

import pulsar
import pytest

from pulsarjobs import App, Settings
from pulsarjobs.errors import EnqueueError
from pulsarjobs.retry import RetryPolicy
from pulsarjobs.testing import TestRunner
from pulsarjobs.workflows import batch_tracker
from pulsarjobs.workflows.batch_state import BatchState, BatchTable
from pulsarjobs.workflows.batches import Batch, both


def settled(job: str, ok: bool = True) -> dict[str, object]:
    return {"kind": "settled", "batch": "b", "job": job, "ok": ok}


def test_an_event_told_twice_counts_once_and_a_batch_completes_only_once_closed() -> None:
    state = BatchState("b")
    for event in (settled("j1"), settled("j1"), settled("j2", ok=False)):
        state.apply(event)
    assert not state.complete  # open: more jobs may come
    state.apply({"kind": "closed", "batch": "b", "members": ["j1", "j2", "j3"]})
    assert not state.complete
    state.apply(settled("j3"))
    progress = state.progress()
    assert state.complete and not state.all_succeeded
    assert (progress.total, progress.succeeded, progress.dead, progress.pending) == (3, 2, 1, 0)


def test_a_late_record_from_an_older_view_undoes_nothing() -> None:
    table = BatchTable()
    old, new = BatchState("b", closed=True, members={"j1", "j2"}), BatchState("b")
    new.merge(old)
    new.apply(settled("j1"))
    new.apply(settled("j2"))
    table.apply("b@w2", new.encode())
    table.apply("b@w1", old.encode())  # w1 lost the key but its write landed last
    assert table.state("b").complete


def make_app() -> App:
    app = App(Settings(namespace="unit"))

    @app.job
    def work(n: int) -> None:
        if n == 13:
            raise ValueError("unlucky")

    @app.job
    def report(name: str) -> None: ...

    @app.job(max_attempts=1)
    def grow() -> None:
        app.current_batch().enqueue(work, 2)

    @app.job(max_attempts=1, keep_result=timedelta(minutes=5))
    def link(name: str) -> str:
        if name == "broken":
            raise RuntimeError("broke")
        return app.current_batch().id

    work.retry = RetryPolicy(max_attempts=1)
    return app


def test_callbacks_under_the_test_runner() -> None:
    app = make_app()
    work, report = app.jobs["work"], app.jobs["report"]
    with TestRunner(app) as runner:
        with app.batch(on_success=report.call("ok"), on_complete=report.call("done")) as batch:
            batch.enqueue(work, 1)
            batch.enqueue(app.jobs["grow"])
            with batch.batch(on_complete=report.call("child")) as child:
                child.enqueue(work, 13)
        runner.run_all()
    reported = [job.args[0] for job in runner.done if job.type == "report"]
    assert reported == ["child", "done"]  # the child's job died: no on_success
    progress = runner.batches.states[batch.id].progress()  # work, grow, what grow added, child
    assert (progress.stage, progress.total, progress.succeeded, progress.dead) == (
        "complete",
        4,
        3,
        1,
    )


def test_a_batch_refuses_jobs_once_closed_and_outside_a_batch_there_is_none() -> None:
    app = make_app()
    with TestRunner(app) as runner:
        with app.batch() as batch:
            pass
        with pytest.raises(RuntimeError, match="is closed"):
            batch.enqueue(app.jobs["work"], 1)
        app.jobs["grow"].enqueue()  # in no batch: it has none to add to
        runner.run_all()
    [dead] = runner.dead
    assert dead.last_error is not None and "belongs to no batch" in dead.last_error.message


def test_a_job_is_settled_only_once_its_replacement_and_its_event_are_both_stored() -> None:
    replacement, told = Future[None](), Future[None]()
    stored = both(replacement, told)
    replacement.set_result(None)
    assert not stored.done()  # the event is not stored yet: the job is not acknowledged
    told.set_exception(EnqueueError("the broker did not confirm"))
    with pytest.raises(EnqueueError):  # the runner hands the job back: it runs again
        stored.result(timeout=1)


def test_a_chain_is_one_job_of_its_batch_settled_by_the_link_ending_it() -> None:
    app = make_app()
    link, report = app.jobs["link"], app.jobs["report"]
    with TestRunner(app) as runner:
        with app.batch(on_success=report.call("ok"), on_complete=report.call("done")) as whole:
            whole.enqueue(app.jobs["work"], 1)
            chained = whole.chain(link.call("a"), link.call("b"), link.call("c"))

        async def fill() -> Batch:
            async with app.batch(
                on_success=report.call("no"), on_complete=report.call("stop")
            ) as b:
                await b.chain_async(link.call("a"), link.call("broken"), link.call("never"))
            return b

        broken = asyncio.run(fill())
        runner.run_all()
        in_batch = [app.result(job_id) for job_id in chained.job_ids]
    ran = [(job.type, job.args[0]) for job in runner.done]
    assert ran.index(("report", "ok")) > ran.index(("link", "c"))  # after the chain's last link
    assert sorted(name for kind, name in ran if kind == "report") == ["done", "ok", "stop"]
    assert ("link", "never") not in ran
    assert whole.jobs[-1] == chained.id
    for batch, counts in ((whole, (2, 2, 0)), (broken, (1, 0, 1))):
        progress = runner.batches.states[batch.id].progress()
        assert (progress.total, progress.succeeded, progress.dead) == counts
    assert in_batch == [whole.id] * 3  # current_batch() inside a link is the chain's batch


def test_a_chain_whose_links_run_twice_counts_once() -> None:
    """A worker killed after storing the next link and before acknowledging its own runs the
    link again, and the links after it run twice: the batch still counts one job, once."""
    app = make_app()
    link, report = app.jobs["link"], app.jobs["report"]
    with TestRunner(app) as runner:
        with app.batch(on_success=report.call("ok"), on_complete=report.call("done")) as batch:
            chained = batch.chain(link.call("a"), link.call("b"))
        [first] = runner.pending
        app.publish_envelope(first).result()  # its first link is delivered twice
        runner.run_all()
    assert runner.runs(link) == 4
    assert sorted(job.args[0] for job in runner.done if job.type == "report") == ["done", "ok"]
    state = runner.batches.states[batch.id]
    assert state.members | state.succeeded | state.dead == {chained.id}


class _Said:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def warning(self, event: str, **fields: object) -> None:
        self.lines.append(("warning", event))

    def exception(self, event: str, **fields: object) -> None:
        self.lines.append(("error with traceback", event))


class _QuietEvents:
    """A batch-events consumer with nothing to deliver, for `rounds` rounds."""

    def __init__(self, stopping: threading.Event, rounds: int) -> None:
        self.stopping, self.rounds = stopping, rounds

    def batch_receive(self) -> list[object]:
        self.rounds -= 1
        if self.rounds <= 0:
            self.stopping.set()
        return []


def test_a_broker_away_while_batches_are_looked_after_is_one_warning_without_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    said = _Said()
    monkeypatch.setattr(batch_tracker, "log", said)
    monkeypatch.setattr(batch_tracker, "HEAL_AFTER_S", 0.0)  # look after batches every round
    tracker = batch_tracker.BatchTracker.__new__(batch_tracker.BatchTracker)
    tracker._stopping = threading.Event()
    tracker._consumer = _QuietEvents(tracker._stopping, rounds=5)  # type: ignore[assignment]

    def broker_away() -> None:
        raise pulsar.NotConnected()

    tracker._heal = broker_away  # type: ignore[method-assign]
    tracker._run()
    assert [level for level, _ in said.lines] == ["warning"], said.lines
