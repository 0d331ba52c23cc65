"""Periodic jobs on the real broker: several schedulers, exactly one enqueue per tick."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from pulsarjobs import App
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import Envelope, decode
from tests.integration.helpers import read_topic, settings_env, stop_process, wait_until


def start_scheduler(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pulsarjobs", "scheduler", "tests.apps.pipeline:app"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def ticks_enqueued(app: App) -> list[Envelope]:
    return [
        decode(m.data())
        for m in read_topic(app.settings, topics_for(app.settings, "ticks").jobs, 1_000)
    ]


def leader_pid(app: App) -> int:
    latest = ticks_enqueued(app)[-1]
    return int(latest.meta["pulsarjobs-scheduler"].rsplit(":", 1)[1])


def test_three_schedulers_enqueue_each_tick_exactly_once_through_two_kill_9s(
    app: App, tmp_path: Path
) -> None:
    env = settings_env(app.settings, tmp_path / "record.jsonl")
    schedulers = [start_scheduler(env, tmp_path / f"scheduler-{n}.log") for n in range(3)]
    killed = []
    try:
        wait_until(lambda: len(ticks_enqueued(app)) >= 5, 60, interval=0.5)
        began = time.monotonic()
        for at in (20, 40):
            time.sleep(max(0.0, began + at - time.monotonic()))
            pid = leader_pid(app)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        time.sleep(max(0.0, began + 60 - time.monotonic()))
    finally:
        for process in schedulers:
            stop_process(process, 30)
    assert len(set(killed)) == 2, "each kill must have hit the leader of the moment"
    envelopes = ticks_enqueued(app)
    per_id = Counter(envelope.id for envelope in envelopes)
    ticks = sorted(
        datetime.fromisoformat(e.meta["pulsarjobs-tick"].replace("Z", "+00:00")) for e in envelopes
    )
    missing = [
        ticks[i] + timedelta(seconds=1)
        for i in range(len(ticks) - 1)
        if ticks[i + 1] - ticks[i] != timedelta(seconds=1)
    ]
    leaders = Counter(e.meta["pulsarjobs-scheduler"] for e in envelopes)
    duplicates = sum(per_id.values()) - len(per_id)
    span = (ticks[-1] - ticks[0]).total_seconds()
    print(f"{len(envelopes)} ticks over {span:.0f} s, {len(leaders)} leaders, {duplicates} dupes")
    assert [job_id for job_id, count in per_id.items() if count > 1] == []
    assert missing == [], "policy 'all': no tick may be missed"
    assert len(leaders) == 3
    listed = subprocess.run(
        [sys.executable, "-m", "pulsarjobs", "cron", "list", "tests.apps.pipeline:app", "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    (every_second,) = [s for s in json.loads(listed.stdout) if s["schedule"] == "every_second"]
    assert every_second["last_tick"] == ticks[-1].isoformat()
    assert len(every_second["next"]) == 3


def test_a_worker_with_scheduler_runs_the_periodic_jobs_itself(app: App, tmp_path: Path) -> None:
    from tests.integration.helpers import start_worker_process, started

    record = tmp_path / "record.jsonl"
    env = settings_env(app.settings, record)
    worker = start_worker_process(env, tmp_path / "worker.log", "--queues", "ticks", "--scheduler")
    try:
        wait_until(lambda: len(started(record, "every_second")) >= 3, 60, interval=0.5)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
    ids = [run["id"] for run in started(record, "every_second")]
    assert len(ids) == len(set(ids))
    assert all(job_id.startswith("cron:every_second:") for job_id in ids)


def test_a_standby_scheduler_says_whom_it_stands_behind_and_warns_of_nothing(
    app: App, tmp_path: Path
) -> None:
    env = settings_env(app.settings, tmp_path / "record.jsonl")
    leader_log, standby_log = tmp_path / "leader.log", tmp_path / "standby.log"
    leader = start_scheduler(env, leader_log)
    standby = None
    try:
        wait_until(lambda: "leading" in leader_log.read_text(), 60)
        standby = start_scheduler(env, standby_log)
        # The standby's wait for leadership times out every 10 s (the client's operation
        # timeout) while the leader holds it: a healthy wait.
        wait_until(lambda: "standing by" in standby_log.read_text(), 30)
        time.sleep(12)  # one more wait, renewed, without a word
    finally:
        assert stop_process(leader) == 0
        if standby is not None:
            assert stop_process(standby) == 0
    said = standby_log.read_text()
    assert "lost the broker" not in said and "warning" not in said, said
    assert "leads" in said and "127.0.0.1" in said, said
