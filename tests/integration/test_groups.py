"""Grouped jobs on the real broker: members meet by key across worker processes, each runs once
in a group no larger than max_size, and a poisoned member ends in the dead letters alone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulsarjobs.app import App
from pulsarjobs.dashboard import Secret, create_app
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.operations.pending_groups import PendingGroups
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import decode
from tests.apps.groups import MAX_SIZE, POISON, make_app
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    read_topic,
    records,
    settings_env,
    start_worker_process,
    stop_process,
    wait_until,
)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")  # Starlette would rather have httpx2
    from starlette.testclient import TestClient

KEYS, PER_KEY = 6, 25


@pytest.fixture
def groups_app(broker: BrokerUnderTest) -> Iterator[App]:
    created = make_app(fresh_settings(broker))
    yield created
    created.close()


def test_members_run_once_each_in_groups_of_their_key_across_two_workers(
    groups_app: App, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    env = settings_env(groups_app.settings, record)
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = [start_worker_process(env, log, app="tests.apps.groups:app") for log in logs]
    collect = groups_app.jobs["collect"]
    try:
        members = [(f"k{key}", collect.call(n)) for n in range(PER_KEY) for key in range(KEYS)]
        members.append(("k0", collect.call(POISON)))
        ids = collect.enqueue_many(members)  # type: ignore[attr-defined]
        poison_id = ids[-1]
        dead = topics_for(groups_app.settings, collect.queue).dead
        ran = lambda: {m for r in records(record) for m in r["members"]}  # noqa: E731
        wait_until(lambda: ran() >= set(ids), 120, interval=0.5)
        wait_until(lambda: len(read_topic(groups_app.settings, dead)) >= 1, 60)
    finally:
        for worker, log in zip(workers, logs, strict=True):
            assert stop_process(worker) == 0, log.read_text()[-2000:]
    groups = records(record)
    assert all(len(g["members"]) <= MAX_SIZE and len(g["keys"]) == 1 for g in groups)
    succeeded = Counter(m for g in groups if POISON not in g["numbers"] for m in g["members"])
    assert set(succeeded) == set(ids) - {poison_id}
    assert max(succeeded.values()) == 1  # no kill, no duplicate
    assert any(len(g["members"]) == MAX_SIZE for g in groups)  # full groups ran at once
    [letter] = read_topic(groups_app.settings, dead)
    [member] = decode(letter.data(), None).args[0]  # type: ignore[misc]
    assert member["id"] == poison_id  # type: ignore[index]


def test_pending_groups_show_in_the_inspector_the_cli_and_the_dashboard(groups_app: App) -> None:
    collect = groups_app.jobs["collect"]
    collect.enqueue_many([(f"k{n % 3}", collect.call(n)) for n in range(7)])  # type: ignore[attr-defined]
    with Inspector(groups_app.settings) as inspector:
        [queue] = [q for q in inspector.queues() if q.queue == collect.queue]
    assert queue.grouping == PendingGroups(members=7, groups=3)
    env = settings_env(groups_app.settings, Path("unused"))
    shown = subprocess.run([sys.executable, "-m", "pulsarjobs", "queues", "--json"], env=env,
                           capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    [listed] = [q for q in json.loads(shown.stdout) if q["queue"] == collect.queue]
    assert listed["grouping"] == {"members": 7, "groups": 3, "exact": True}
    web = create_app(groups_app.settings, Secret("token"))
    with TestClient(web, base_url="http://127.0.0.1:7420") as client:
        page = client.get("/queues", headers={"Authorization": "Bearer token"}).text
    assert re.search(r'data-testid="grouping">7 in 3<', page)


def test_cancel_by_group_key_leaves_those_members_out_of_their_group(
    groups_app: App, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    collect = groups_app.jobs["collect"]
    cancelled = collect.enqueue_many([("deleted-user", collect.call(n)) for n in range(3)])  # type: ignore[attr-defined]
    kept = collect.enqueue_many([("other-user", collect.call(n)) for n in range(3)])  # type: ignore[attr-defined]
    assert groups_app.cancel_matching(group="deleted-user") == 3
    log = tmp_path / "worker.log"
    worker = start_worker_process(settings_env(groups_app.settings, record), log,
                                  app="tests.apps.groups:app")  # fmt: skip
    try:
        ran = lambda: {m for r in records(record) for m in r["members"]}  # noqa: E731
        wait_until(lambda: ran() >= set(kept), 60, interval=0.5)
        with Inspector(groups_app.settings) as inspector:  # the cancelled ones acknowledged too
            wait_until(lambda: inspector.queue(collect.queue).grouping.members == 0, 30)
    finally:
        assert stop_process(worker) == 0, log.read_text()[-2000:]
    assert ran() == set(kept)
    assert not set(cancelled) & ran()
