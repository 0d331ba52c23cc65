"""Scenario 18: the transactional outbox under relay kills. Four processes commit transactions
of one job each (every third rolled back) while two relays run; the leading relay is killed
with SIGKILL every 1-3 s and a new one started each time (and, at full size, the broker is
killed and restarted once). Every committed job must be on the queue exactly once, no rolled
back one at all.

Full size (`--long`): 10,000 transactions, 5 relay kills and a broker restart.

Beside it, relays killed in the window the broker's de-duplication closes: after the broker
stored a batch, before the relay marked it published (3 kills over 200 jobs; 20 kills over
2,000 at full size)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from pulsarjobs.outbox import Outbox, metadata
from pulsarjobs.outbox.store import Store
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import decode
from tests.apps.outbox import DIE_VARIABLE
from tests.apps.outbox import make_app as make_outbox_app
from tests.integration.helpers import read_topic, start_pulsarjobs, stop_process, wait_until
from tests.reliability import report
from tests.reliability.conftest import Scenario
from tests.reliability.recorder import RunRecord

pytestmark = pytest.mark.reliability

WRITERS = 4


def test_outbox_relay_kill_9(own_scenario: Scenario, postgres: str) -> None:
    scenario = own_scenario
    transactions, kills_wanted = scenario.sized(400, 10_000), scenario.sized(2, 5)
    engine = sa.create_engine(postgres)
    metadata.create_all(engine)
    store = Store(engine, scenario.settings.full_namespace)
    relays = [start_relay(scenario, postgres) for _ in range(2)]
    fates = scenario.directory / "fates.txt"
    writers = [
        subprocess.Popen([sys.executable, "-m", "tests.apps.outbox", "write", postgres,
                          str(transactions // WRITERS), str(fates)], env=scenario.env)
        for _ in range(WRITERS)
    ]  # fmt: skip
    kills, restarted = 0, False
    while any(writer.poll() is None for writer in writers) or kills < kills_wanted:
        time.sleep(random.uniform(1, 3))
        leader = leading(scenario, relays)
        if leader is not None:
            leader.kill()
            leader.wait(30)
            kills += 1
            relays.append(start_relay(scenario, postgres))
        if scenario.long and not restarted and kills == 2:
            scenario.broker.kill_and_restart()
            restarted = True
    assert all(writer.wait(60) == 0 for writer in writers)
    wait_until(lambda: store.lag().pending == 0, scenario.sized(60, 600), interval=0.5)
    scenario.stop_workers()
    engine.dispose()
    made, leaked = check(scenario, fates, kills, restarted)
    assert (made.lost, made.duplicates, leaked) == (0, 0, 0), f"lost: {made.lost_ids}"


def start_relay(scenario: Scenario, url: str) -> subprocess.Popen[bytes]:
    log = scenario.directory / f"relay-{len(scenario.workers)}.log"
    process = start_pulsarjobs(scenario.env, log, "outbox", "relay", "--database", url,
                               "--poll-interval", "0.2")  # fmt: skip
    scenario.workers.append(process)  # stopped with the workers at the end, whatever happens
    return process


def leading(
    scenario: Scenario, relays: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes] | None:
    """The live relay that said it leads (a relay leads once in its life here)."""
    for process in relays:
        log = scenario.directory / f"relay-{scenario.workers.index(process)}.log"
        if process.poll() is None and "leading:" in log.read_text():
            return process
    return None


def check(
    scenario: Scenario, fates: Path, kills: int, restarted: bool
) -> tuple[report.Report, int]:
    """The report, and how many rolled back jobs were published (none may be)."""
    lines = [line.rsplit(" ", 1) for line in fates.read_text().splitlines()]
    committed = [job_id for fate, job_id in lines if fate == "committed"]
    rolled_back = {job_id for fate, job_id in lines if fate == "rolled back"}
    messages = read_topic(scenario.settings, topics_for(scenario.settings, "default").jobs)
    stored = Counter(decode(message.data()).id for message in messages)
    runs = [RunRecord(job_id, 1, 0, 0.0, None) for job_id, count in stored.items()
            for _ in range(count) if job_id not in rolled_back]  # fmt: skip
    leaked = sum(stored[job_id] for job_id in rolled_back)
    notes = (f"{len(rolled_back):,} transactions rolled back, {leaked} of them published; "
             f"{kills} relay kills" + (", a broker restart" if restarted else ""))  # fmt: skip
    made = report.check(scenario.name, scenario.size, committed, runs, {},
                        time.monotonic() - scenario.started, notes)  # fmt: skip
    return made, leaked


def test_outbox_relay_killed_between_the_broker_ack_and_marking(
    scenario: Scenario, postgres: str
) -> None:
    """Each relay dies (SIGKILL, by its own hand) as it is about to mark published its first,
    second or third batch of 20, which the broker stored; the next sends them again under the
    sequence ids they were claimed with, and the broker drops what it has."""
    jobs, kills_wanted = scenario.sized(200, 2_000), scenario.sized(3, 20)
    engine = sa.create_engine(postgres)
    metadata.create_all(engine)
    store = Store(engine, scenario.settings.full_namespace)
    outbox = Outbox(make_outbox_app(scenario.settings))
    committed: list[str] = []
    for start in range(0, jobs, 100):
        with Session(engine) as session, session.begin():
            calls = [outbox.app.jobs["receipt"].call(n) for n in range(start, start + 100)]
            committed += outbox.enqueue_many(session, calls)
    outbox.app.close()
    kills = 0
    while kills < kills_wanted and store.lag().pending:
        die_at = 1 if kills == 0 else random.randint(1, 3)  # its first batch, then any
        died = relay_until_done(scenario, postgres, store, {DIE_VARIABLE: str(die_at)})
        assert died == -signal.SIGKILL, scenario.logs()
        kills += 1
    assert kills == kills_wanted, f"{jobs} jobs were published after {kills} kills"
    relay_until_done(scenario, postgres, store, {})
    assert store.lag().pending == 0, scenario.logs()
    engine.dispose()
    messages = read_topic(scenario.settings, topics_for(scenario.settings, "default").jobs)
    stored = Counter(decode(message.data()).id for message in messages)
    runs = [RunRecord(job_id, 1, 0, 0.0, None) for job_id, count in stored.items()
            for _ in range(count)]  # fmt: skip
    notes = f"{kills} relay kills between the broker's ack and marking rows published"
    made = report.check(scenario.name, scenario.size, committed, runs, {},
                        time.monotonic() - scenario.started, notes)  # fmt: skip
    assert (made.lost, made.duplicates) == (0, 0), f"lost: {made.lost_ids}"
    assert set(stored) == set(committed)


def relay_until_done(scenario: Scenario, url: str, store: Store, env: dict[str, str]) -> int:
    """Run a relay (tests/apps/outbox.py) until it dies or nothing is left to publish (then
    stop it): its exit code."""
    with (scenario.directory / "relays.log").open("ab") as out:
        relay = subprocess.Popen([sys.executable, "-m", "tests.apps.outbox", url],
                                 env={**scenario.env, **env}, stdout=out,
                                 stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_until(lambda: relay.poll() is not None or store.lag().pending == 0, 60)
    finally:
        code = stop_process(relay)
    return code
