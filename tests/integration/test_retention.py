"""Dead-letter retention on the real broker: set, shown and cleared from the command line and
from Python; dead letters past the age, or past the size (the oldest first), are removed."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx

from pulsarjobs.app import App, JobCall
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.operations.retention import dead_retention
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.transport.topics import topics_for
from tests.integration.helpers import wait_until, worker_in_thread
from tests.integration.test_dashboard import BEARER, dashboard
from tests.integration.test_operations import cli, cli_json, queue_stats
from tests.integration.test_partitions import partitioned


def broker_setting(settings: Settings, name: str) -> int:
    found = httpx.get(f"{settings.admin_url}/admin/v2/brokers/configuration/runtime").json()
    return int(found[name])


def dead_letter_ids(settings: Settings, queue: str) -> list[str]:
    with Inspector(settings) as inspector:
        return [letter.job_id for letter in inspector.dead_letters(queue)]


def dead_count(settings: Settings, queue: str) -> int:
    with Inspector(settings) as inspector:
        return inspector.dead_count(queue)


def kill(app: App, queue: str, jobs: int, reason: str = "no") -> list[str]:
    """Enqueue jobs that die at their first run on `queue`; return once all are dead."""
    ids = app.enqueue_many([JobCall("always_fails", args=(reason,), queue=queue)] * jobs)
    with worker_in_thread(app, queues=queue, concurrency=10):
        wait_until(lambda: dead_count(app.settings, queue) == jobs, 120)
    return ids


def test_retention_is_set_shown_and_cleared_from_the_command_line_and_python(app: App) -> None:
    settings = app.settings
    said = cli(settings, "queues", "retention", "default")
    assert said.exit_code == 0 and "kept forever" in said.stdout, said.output

    kept = cli_json(
        settings, "queues", "retention", "default", "--dead-for", "30d", "--dead-max-size", "1G"
    )
    assert kept == {"max_age": 30 * 86400, "max_size": 1024**3}
    dead = topics_for(settings, "default").dead
    with Admin(settings.admin_url) as admin:  # the broker's own policies say the same
        assert admin.topic_message_ttl(dead) == 30 * 86400
        assert admin.backlog_eviction_size(dead) == 1024**3
    assert queue_stats(settings)["dead_retention"] == kept
    table = cli(settings, "queues")
    assert "30d / 1 GiB" in table.stdout, table.output

    # An option left out keeps its setting.
    assert cli_json(settings, "queues", "retention", "default", "--dead-for", "12h") == {
        "max_age": 12 * 3600, "max_size": 1024**3,
    }  # fmt: skip
    cleared = cli(settings, "queues", "retention", "default", "--clear")
    assert "kept forever" in cleared.stdout, cleared.output
    with Admin(settings.admin_url) as admin:
        assert admin.topic_message_ttl(dead) is None
        assert admin.backlog_eviction_size(dead) is None
        kept_now = app.set_dead_retention("default", max_age=timedelta(days=183), max_size="500M")
        assert kept_now == dead_retention(admin, topics_for(settings, "default"))
    assert str(kept_now) == "183d / 500 MiB"

    bad_options = (
        ["--dead-for", "a month"],
        ["--dead-max-size", "lots"],
        ["--clear", "--dead-for", "1d"],
    )
    for args in bad_options:
        bad = cli(settings, "queues", "retention", "default", *args)
        assert bad.exit_code == 2, bad.output
        assert "Traceback" not in bad.output
    assert queue_stats(settings)["dead_retention"]["max_age"] == 183 * 86400  # unchanged


def test_dead_letters_of_a_partitioned_queue_go_once_they_are_older_than_the_age(app: App) -> None:
    settings = app.settings
    partitioned(app, "parted")
    kill(app, "parted", 5)
    assert queue_stats(settings, "parted")["dead"] == 5  # kept while no retention is set

    time.sleep(3)  # each dead letter is older than the age by the time it is set
    app.set_dead_retention("parted", max_age=timedelta(seconds=2))
    # The broker expires what is older as the policy reaches each partition, else at its next
    # look (every messageExpiryCheckIntervalInMinutes): allow a whole interval and a minute.
    interval = broker_setting(settings, "messageExpiryCheckIntervalInMinutes") * 60
    wait_until(lambda: dead_count(settings, "parted") == 0, interval + 60, interval=1)
    assert queue_stats(settings, "parted")["dead_retention"]["max_age"] == 2


def test_dead_letters_past_the_size_go_oldest_first(app: App) -> None:
    settings = app.settings
    kill(app, "default", 40, reason="x" * 2000)  # each dead letter holds its reason twice
    before = dead_letter_ids(settings, "default")

    app.set_dead_retention("default", max_size="32K")
    interval = broker_setting(settings, "backlogQuotaCheckIntervalInSeconds")
    wait_until(lambda: dead_count(settings, "default") < 40, interval + 60, interval=1)
    kept = dead_letter_ids(settings, "default")
    assert 0 < len(kept) < 40
    assert kept == before[-len(kept) :]  # the newest are the ones kept


def test_the_dashboard_says_how_long_dead_letters_are_kept(app: App) -> None:
    settings = app.settings
    kill(app, "default", 1)
    with dashboard(settings) as client:

        def page(path: str) -> str:
            return str(client.get(path, headers=BEARER).text)

        assert 'data-testid="dead-kept">forever<' in page("/queues")
        assert "Dead letters of default are kept forever" in page("/dead?queue=default")
        app.set_dead_retention("default", max_age=timedelta(days=30), max_size="1G")
        wait_until(lambda: 'data-testid="dead-kept">30d / 1 GiB<' in page("/queues"), 60)
        dead_page = page("/dead?queue=default")
        assert (
            "Dead letters of default are kept 30d / 1 GiB: each is removed 30d after" in dead_page
        )
        retention = client.get("/api/dead?queue=default", headers=BEARER).json()["retention"]
        assert retention == {"max_age": 30 * 86400, "max_size": 1024**3}
