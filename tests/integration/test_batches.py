"""Batches on the real broker: callbacks once all jobs settled, nested batches, jobs that add
to their own batch, and progress as the Inspector and the CLI show it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulsarjobs import App
from pulsarjobs.clock import utc_now
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.transport.topics import batches_topic, topics_for
from pulsarjobs.wire.envelope import decode
from pulsarjobs.workflows.batch_state import BatchProgress, firing_record
from pulsarjobs.workflows.batches import Batch
from tests.apps.batches import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    read_topic,
    records,
    settings_env,
    wait_until,
    worker_in_thread,
)

TIMEOUT = 120


@pytest.fixture
def app(broker: BrokerUnderTest) -> Iterator[App]:
    created = make_app(fresh_settings(broker))
    yield created
    created.close()


def callbacks(record: Path) -> list[tuple[str, str]]:
    return sorted((r["batch"], r["kind"]) for r in records(record) if r["event"] == "callback")


def test_callbacks_run_once_when_every_job_succeeded(app: App, record: Path) -> None:
    work, callback = app.jobs["work"], app.jobs["callback"]
    on_success, on_complete = callback.call("b1", "success"), callback.call("b1", "complete")
    with app.batch(on_success=on_success, on_complete=on_complete, description="ten") as batch:
        for n in range(10):
            batch.enqueue(work, n)
    with worker_in_thread(app):
        wait_until(lambda: len(callbacks(record)) == 2, TIMEOUT)
        progress = shown(app, batch.id)
    assert callbacks(record) == [("b1", "complete"), ("b1", "success")]
    assert progress is not None
    assert (progress.stage, progress.total, progress.succeeded, progress.dead) == (
        "complete",
        10,
        10,
        0,
    )
    assert progress.description == "ten"


def test_a_dead_job_fires_on_complete_but_not_on_success(app: App, record: Path) -> None:
    work, fail, callback = app.jobs["work"], app.jobs["fail"], app.jobs["callback"]
    on_success, on_complete = callback.call("b2", "success"), callback.call("b2", "complete")
    with app.batch(on_success=on_success, on_complete=on_complete) as batch:
        batch.enqueue_many([work.call(n) for n in range(5)])
        batch.enqueue(fail.call(5))
    with worker_in_thread(app):
        wait_until(lambda: callbacks(record) == [("b2", "complete")], TIMEOUT)
        progress = shown(app, batch.id)
    assert progress is not None
    assert (progress.total, progress.succeeded, progress.dead, progress.pending) == (6, 5, 1, 0)
    assert progress.fired == ("on_complete",)
    assert callbacks(record) == [("b2", "complete")]  # and on_success never came
    env = settings_env(app.settings, record)
    listed = cli(env, "batches", "list", "--json")
    assert [(b["id"], b["stage"], b["total"], b["dead"]) for b in json.loads(listed)] == [
        (batch.id, "complete", 6, 1)
    ]
    shown_text = cli(env, "batches", "show", batch.id)
    assert "complete" in shown_text and "on_complete" in shown_text
    missing = subprocess.run([sys.executable, "-m", "pulsarjobs", "batches", "show", "nope"],
                             env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "error: no batch 'nope' in this namespace (a worker records a batch once it runs)"
    ]


def test_a_child_batch_counts_as_one_job_of_its_parent(app: App, record: Path) -> None:
    work, fail, callback = app.jobs["work"], app.jobs["fail"], app.jobs["callback"]
    with app.batch(on_success=callback.call("parent", "success"),
                   on_complete=callback.call("parent", "complete")) as parent:  # fmt: skip
        parent.enqueue(work, 1)
        with parent.batch(on_complete=callback.call("child", "complete")) as child:
            child.enqueue_many([work.call(2), fail.call(3)])
        with app.batch(parent=parent, on_success=callback.call("other", "success")) as other:
            other.enqueue(work, 4)
    with worker_in_thread(app):
        wait_until(lambda: len(callbacks(record)) == 3, TIMEOUT)
        with Inspector(app.settings) as inspector:
            shown = {batch.id: batch for batch in inspector.batches()}
    # the child had a dead job: the parent completes but does not succeed
    assert callbacks(record) == [
        ("child", "complete"),
        ("other", "success"),
        ("parent", "complete"),
    ]
    assert (shown[parent.id].total, shown[parent.id].succeeded, shown[parent.id].dead) == (3, 2, 1)
    assert shown[child.id].parent == parent.id


def test_a_job_adds_jobs_to_its_own_batch(app: App, record: Path) -> None:
    spawn, callback = app.jobs["spawn"], app.jobs["callback"]
    with app.batch(on_success=callback.call("grown", "success")) as batch:
        batch.enqueue(spawn, 5)
    with worker_in_thread(app):
        wait_until(lambda: callbacks(record) == [("grown", "success")], TIMEOUT)
        progress = shown(app, batch.id)
    ran = sorted(r["n"] for r in records(record) if r["event"] == "start")
    assert ran == [-1, 100, 101, 102, 103, 104]
    callback_at = next(r["t"] for r in records(record) if r["event"] == "callback")
    assert callback_at >= max(r["t"] for r in records(record) if r["event"] == "start")
    assert progress is not None and (progress.total, progress.succeeded) == (6, 6)


def test_a_chain_counts_as_one_job_settled_by_its_last_link(app: App, record: Path) -> None:
    work, link, callback = app.jobs["work"], app.jobs["link"], app.jobs["callback"]
    with app.batch(on_success=callback.call("chained", "success"),
                   on_complete=callback.call("chained", "complete")) as batch:  # fmt: skip
        batch.enqueue_many([work.call(1), work.call(2)])
        chained = batch.chain(link.call("a"), link.call("b"), link.call("c"))
    with worker_in_thread(app):
        wait_until(lambda: len(callbacks(record)) == 2, TIMEOUT)
        progress = shown(app, batch.id)
    runs = records(record)
    links = [r for r in runs if r["event"] == "link"]
    assert [(r["name"], r["batch"]) for r in links] == [(n, batch.id) for n in "abc"]
    success = next(i for i, r in enumerate(runs) if r.get("kind") == "success")
    assert success > runs.index(links[-1])  # the batch waited for the chain's last link
    assert callbacks(record) == [("chained", "complete"), ("chained", "success")]
    assert chained.id in batch.jobs
    assert progress is not None
    assert (progress.total, progress.succeeded, progress.dead) == (3, 3, 0)


def test_a_chain_that_breaks_fails_its_batch_and_stops(app: App, record: Path) -> None:
    work, link, callback = app.jobs["work"], app.jobs["link"], app.jobs["callback"]
    with app.batch(on_success=callback.call("broken", "success"),
                   on_complete=callback.call("broken", "complete")) as batch:  # fmt: skip
        batch.enqueue(work, 1)
        batch.chain(link.call("a"), link.call("b", fails=True), link.call("c"))
    with worker_in_thread(app):
        wait_until(lambda: callbacks(record) == [("broken", "complete")], TIMEOUT)
        progress = shown(app, batch.id)
    assert [r["name"] for r in records(record) if r["event"] == "link"] == ["a", "b"]
    assert callbacks(record) == [("broken", "complete")]  # and on_success never came
    assert progress is not None
    assert (progress.total, progress.succeeded, progress.dead) == (2, 1, 1)


def test_async_batch(app: App, record: Path) -> None:
    work, callback = app.jobs["work"], app.jobs["callback"]

    async def fill() -> Batch:
        async with app.batch(on_complete=callback.call("async", "complete")) as batch:
            await batch.enqueue_async(work, 1)
            await batch.enqueue_many_async([work.call(2), work.call(3)])
            await batch.chain_async(work.call(4), work.call(5))
        return batch

    assert len(asyncio.run(fill()).jobs) == 4
    with worker_in_thread(app):
        wait_until(lambda: callbacks(record) == [("async", "complete")], TIMEOUT)


def test_an_open_batch_does_not_complete_before_its_block_ends(app: App, record: Path) -> None:
    work, callback = app.jobs["work"], app.jobs["callback"]
    with worker_in_thread(app), app.batch(on_complete=callback.call("slow", "x")) as batch:
        batch.enqueue(work, 1)
        wait_until(lambda: any(r["event"] == "start" for r in records(record)), TIMEOUT)
        wait_until(lambda: stage(app, batch.id) == ("open", 1), TIMEOUT)
        assert callbacks(record) == []  # its only job is done, but more may come
        batch.enqueue(work, 2)
    with worker_in_thread(app):
        wait_until(lambda: callbacks(record) == [("slow", "x")], TIMEOUT)


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pulsarjobs", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    return done.stdout


def shown(app: App, batch_id: str) -> BatchProgress | None:
    with Inspector(app.settings) as inspector:
        return inspector.batch(batch_id)


def stage(app: App, batch_id: str) -> tuple[str, int] | None:
    """A batch's stage and succeeded jobs, as the Inspector shows them."""
    progress = shown(app, batch_id)
    return None if progress is None else (progress.stage, progress.succeeded)


@pytest.mark.parametrize("sent_before_the_crash", [True, False])
def test_a_worker_killed_while_firing_leaves_each_callback_enqueued_once(
    app: App, record: Path, sent_before_the_crash: bool
) -> None:
    """The state a worker killed between `firing` and `done` leaves: the next one enqueues the
    callback only if it is not on its queue yet."""
    work, callback = app.jobs["work"], app.jobs["callback"]
    with app.batch(on_complete=callback.call("crash", "complete")) as batch:
        batch.enqueue(work, 1)
    on_complete = batch.callbacks()["on_complete"]
    if sent_before_the_crash:
        app.publish_envelope(on_complete).result()
    app.connection.put_mark(batches_topic(app.settings), batch.id, firing_record(utc_now()))
    with worker_in_thread(app):
        wait_until(lambda: stage(app, batch.id) == ("complete", 1), TIMEOUT)
        wait_until(lambda: callbacks(record) == [("crash", "complete")], TIMEOUT)
    messages = read_topic(app.settings, topics_for(app.settings, "default").jobs)
    ids = [decode(message.data()).id for message in messages]
    assert ids.count(on_complete.id) == 1
