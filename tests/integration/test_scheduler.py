"""Periodic jobs on the real broker: several schedulers, exactly one enqueue per tick, whether
they run one app's schedules or several apps' in one namespace."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import pytest
from starlette.testclient import TestClient

from pulsarjobs import App
from pulsarjobs.dashboard import Secret, create_app
from pulsarjobs.scheduling.cron import SCHEDULE_META, TICK_META, Schedule
from pulsarjobs.scheduling.scheduler import SCHEDULER_META, Scheduler
from pulsarjobs.settings import Settings
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import Envelope, decode
from tests.conftest import BrokerUnderTest
from tests.integration.helpers import (
    fresh_settings,
    read_topic,
    settings_env,
    stop_process,
    wait_until,
)
from tests.integration.test_dashboard import BEARER, TOKEN


def start_scheduler(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pulsarjobs", "scheduler", "tests.apps.pipeline:app"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def ticks_enqueued(app: App) -> list[Envelope]:
    return [
        decode(m.data()) for m in read_topic(app.settings, topics_for(app.settings, "ticks").jobs)
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
        for _ in range(2):  # the reliability scenario kills more leaders, for longer
            pid = leader_pid(app)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            # wait for the next leader rather than a fixed time: on a loaded machine its takeover
            # (the broker noticing the dropped connection, then its queued producer) takes seconds
            wait_until(lambda: leader_pid(app) not in killed, 60, interval=0.5)
            settled = len(ticks_enqueued(app))
            wait_until(lambda n=settled: len(ticks_enqueued(app)) >= n + 3, 30, interval=0.5)
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
        # No worker runs the ticks: the Cron page links the last one to its waiting job's page.
        web = create_app(app.settings, Secret(TOKEN), app=app)
        with TestClient(web, base_url="http://127.0.0.1:7420") as client:
            cron = client.get("/cron", headers=BEARER).text
            (link,) = re.findall(r'href="/jobs/(cron[^"]+)" data-testid="tick-job-link"', cron)
            job_page = client.get(f"/jobs/{link}", headers=BEARER).text
    finally:
        assert stop_process(leader) == 0
        if standby is not None:
            assert stop_process(standby) == 0
    said = standby_log.read_text()
    assert "lost the broker" not in said and "warning" not in said, said
    assert "leads" in said and "127.0.0.1" in said, said
    assert f'data-testid="job-id">{unquote(link)}<' in job_page
    assert 'data-testid="job-state-name">waiting<' in job_page


# Two apps' schedules, side by side in one namespace: (schedule name, cron line, queue) each.
TWO_APPS = {
    "names": {"a": ("beat_a", "* * * * * *", "clock"), "b": ("beat_b", "* * * * * *", "clock")},
    "expressions": {"a": ("beat", "* * * * * *", "clock"), "b": ("beat", "* * * * * */2", "clock")},
    "queues": {"a": ("beat", "* * * * * *", "clock_a"), "b": ("beat", "* * * * * *", "clock_b")},
}


def clock_app(settings: Settings, label: str, name: str, cron: str, queue: str) -> App:
    """An app of its own with one schedule, whose ticks carry `label` as their argument."""
    app = App(settings)

    @app.job(name="beat", queue=queue)
    def beat(label: str) -> None: ...

    app.schedule(beat, cron, name=name, args=(label,), missed="all")
    return app


def serve(app: App, label: str) -> tuple[Scheduler, threading.Thread]:
    """The app's own scheduler, serving in a thread."""
    scheduler = Scheduler(app, name=f"app-{label}")
    thread = threading.Thread(target=scheduler.serve, daemon=True)
    thread.start()
    return scheduler, thread


def halt(*running: tuple[Scheduler, threading.Thread]) -> None:
    for scheduler, _ in running:
        scheduler.stop()
    for scheduler, _ in running:
        scheduler.app.close()  # also ends a wait for leadership
    for _, thread in running:
        thread.join(30)


def ticks_on(settings: Settings, queues: set[str]) -> list[Envelope]:
    return [
        decode(m.data())
        for queue in sorted(queues)
        for m in read_topic(settings, topics_for(settings, queue).jobs)
    ]


def tally(
    schedule: Schedule, enqueued: list[Envelope], began: datetime, ended: datetime
) -> dict[str, int]:
    """The schedule's ticks among `enqueued`, those due while it was served, those enqueued
    more than once, and those missing from its first tick to its last."""
    ticks = Counter(datetime.fromisoformat(e.meta[TICK_META].replace("Z", "+00:00"))
                    for e in enqueued)  # fmt: skip
    between = schedule.ticks(min(ticks) - timedelta(seconds=1), max(ticks)) if ticks else []
    return {
        "ticks": sum(ticks.values()),
        "due": len(schedule.ticks(began, ended)),
        "doubled": sum(count - 1 for count in ticks.values()),
        "missing": len(set(between) - set(ticks)),
    }


@pytest.mark.parametrize("differ", sorted(TWO_APPS))
def test_two_apps_in_one_namespace_each_tick_their_own_schedule_exactly_once(
    broker: BrokerUnderTest, differ: str
) -> None:
    """Each app runs its own scheduler: each one's ticks are all enqueued, once."""
    settings = fresh_settings(broker)
    apps = {label: clock_app(settings, label, *spec) for label, spec in TWO_APPS[differ].items()}
    began = datetime.now(UTC)
    running = [serve(app, label) for label, app in apps.items()]
    try:
        time.sleep(10)  # ten ticks of each every-second schedule
        ended = datetime.now(UTC)
    finally:
        halt(*running)
    enqueued = ticks_on(settings, {queue for _, _, queue in TWO_APPS[differ].values()})
    counted = {
        label: tally(schedule, [e for e in enqueued if e.args == (label,)], began, ended)
        for label, app in apps.items()
        for schedule in app.schedules.values()
    }
    print(f"{differ}: {counted}")
    for label, seen in counted.items():
        assert seen["ticks"] >= seen["due"] // 2, f"app {label} ticked too little: {counted}"
        assert (seen["doubled"], seen["missing"]) == (0, 0), f"app {label}: {counted}"


def test_a_schedule_two_apps_declare_alike_ticks_once_and_on_when_one_app_stops(
    broker: BrokerUnderTest,
) -> None:
    """App a declares `beat`; app b the same `beat` and `tock` besides (as a new release of a
    beside the old one would). Each second of each is enqueued once, by a then by b."""
    settings = fresh_settings(broker)
    one = clock_app(settings, "a", "beat", "* * * * * *", "clock")
    other = clock_app(settings, "b", "beat", "* * * * * *", "clock")
    other.schedule(other.jobs["beat"], "* * * * * *", name="tock", args=("b",), missed="all")
    began = datetime.now(UTC)
    first = serve(one, "a")
    second = None
    try:
        time.sleep(4)
        second = serve(other, "b")
        time.sleep(12)
        halt(first)
        time.sleep(8)
        ended = datetime.now(UTC)
    finally:
        halt(first, *([second] if second else []))
    enqueued = ticks_on(settings, {"clock"})
    counted = {
        name: tally(schedule, [e for e in enqueued if e.meta[SCHEDULE_META] == name], began, ended)
        for name, schedule in other.schedules.items()
    }
    by = Counter(e.meta[SCHEDULER_META] for e in enqueued if e.meta[SCHEDULE_META] == "beat")
    print(f"{counted}, beat's ticks by {dict(by)}")
    for name, seen in counted.items():
        assert seen["ticks"] >= seen["due"] - 12, f"{name} ticked too little: {counted}"
        assert (seen["doubled"], seen["missing"]) == (0, 0), f"{name}: {counted}"
    assert set(by) == {"app-a", "app-b"}, "b takes beat over once a stops"
