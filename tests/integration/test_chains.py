"""Chains on the real broker: links in order with results passed on, a broken link stops the
chain and says so, and a chain goes on across a worker restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pulsarjobs import App
from pulsarjobs.errors import JobFailed
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import decode
from tests.apps.workflows import make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    read_topic,
    settings_env,
    start_worker_process,
    stop_process,
    wait_until,
    worker_in_thread,
)
from tests.integration.test_operations import cli

WAIT = 60.0
KEEP = timedelta(hours=1)


@pytest.fixture
def app(broker: BrokerUnderTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.setenv("PULSARJOBS_TEST_RECORD", str(tmp_path / "runs"))
    created = make_app(fresh_settings(broker))
    yield created
    created.close()


def ran(tmp_path: Path) -> list[str]:
    """The links that ran, by name, and how often."""
    runs = tmp_path / "runs"
    return sorted(path.name.split("-")[0] for path in runs.iterdir()) if runs.exists() else []


def test_a_chain_of_three_passes_each_result_to_the_next(app: App) -> None:
    link, passes = app.jobs["link"], app.jobs["passes"]
    chained = app.chain(
        link.call("a"), passes.call(suffix="+b"), passes.call(suffix="+c"),
        pass_result=True, keep_result=KEEP,
    )  # fmt: skip
    assert len(chained.job_ids) == 3 and chained.last_id == chained.job_ids[-1]
    with worker_in_thread(app):
        assert app.result(chained.last_id, timeout=WAIT) == "a+b+c"
        later = asyncio.run(
            app.chain_async(link.call("x"), link.call("y"), keep_result=KEEP)
        )  # without pass_result: y gets no argument
        assert app.result(later.last_id, timeout=WAIT) == "y"


def test_a_broken_link_stops_the_chain_its_dead_letter_names_the_link_and_a_replay_resumes_it(
    app: App, tmp_path: Path
) -> None:
    link = app.jobs["link"]
    chained = app.chain(link.call("one"), link.call("broken"), link.call("three"), keep_result=KEEP)
    dead_letters = topics_for(app.settings, "default").dead
    with worker_in_thread(app):
        with pytest.raises(JobFailed) as failed:  # the chain's result is its failure
            app.result(chained.last_id, timeout=WAIT)
        wait_until(lambda: len(read_topic(app.settings, dead_letters)) == 1, WAIT)
    assert "chain link 2 of 3" in failed.value.error_message
    assert failed.value.error_type == "RuntimeError"
    (letter,) = read_topic(app.settings, dead_letters)
    properties = letter.properties()
    assert properties["pulsarjobs-reason"] == "failed 1 of 1 attempts (chain link 2 of 3)"
    assert properties["pulsarjobs-chain-link"] == "2 of 3"
    assert properties["pulsarjobs-chain-id"] == chained.id
    dead = decode(letter.data())
    assert dead.id == chained.job_ids[1]
    assert dead.chain is not None and [j.id for j in dead.chain.next] == [chained.job_ids[2]]
    assert ran(tmp_path) == ["broken", "one"]  # never "three"
    (tmp_path / "runs" / "fixed").touch()
    replayed = cli(app.settings, "dlq", "replay", "default")
    assert replayed.exit_code == 0, replayed.output
    with worker_in_thread(app):
        wait_until(lambda: "three" in ran(tmp_path), WAIT)
        wait_until(lambda: app.result(chained.last_id, timeout=WAIT) == "three", WAIT)
    assert ran(tmp_path) == ["broken", "broken", "fixed", "one", "three"]


def test_a_chain_goes_on_after_its_worker_is_restarted_between_links(
    app: App, tmp_path: Path
) -> None:
    link, passes = app.jobs["link"], app.jobs["passes"]
    env = settings_env(app.settings, tmp_path / "runs")
    log = tmp_path / "worker.log"
    # The second link waits on a queue that the first worker does not serve.
    chained = app.chain(
        link.call("first"),
        passes.call(suffix="+second").with_options(queue="later"),
        passes.call(suffix="+third"),
        pass_result=True,
        keep_result=KEEP,
    )
    first = start_worker_process(env, log, "--queues", "default", app="tests.apps.workflows:app")
    try:
        wait_until(lambda: ran(tmp_path) == ["first"], WAIT)
        waiting = topics_for(app.settings, "later").jobs
        wait_until(lambda: len(read_topic(app.settings, waiting)) == 1, WAIT)
    finally:
        assert stop_process(first) == 0
    second = start_worker_process(
        env, log, "--queues", "later,default", app="tests.apps.workflows:app"
    )
    try:
        assert app.result(chained.last_id, timeout=WAIT) == "first+second+third"
    finally:
        assert stop_process(second) == 0
    assert ran(tmp_path) == ["first"]  # ran once, though its worker stopped after it
