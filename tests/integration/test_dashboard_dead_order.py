"""The Dead page newest first, or oldest first, on a real broker: the first page shows the latest
dead job first and reads no more than it shows, paging in either order lists every dead letter
once (over two ledgers), filters and the order are kept together, and the buttons acting on
"everything matching" act on the same set whichever the order. `pulsarjobs dlq list` too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pulsarjobs.app import App, JobCall
from pulsarjobs.clock import utc_now
from pulsarjobs.operations.dead_letters import dead_letter_properties
from pulsarjobs.transport.admin import Admin, topic_path
from pulsarjobs.transport.answers import Acks
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import JobError, encode
from pulsarjobs.worker.feed import keep_dead_letters
from tests.integration.test_dashboard import BEARER, api, dashboard, finished, post
from tests.integration.test_operations import cli, cli_json

pytestmark = pytest.mark.broker

LETTERS = 60  # 30 on one ledger, 30 on the next
PAGE = 25


def publish_dead(app: App, numbers: range) -> list[str]:
    """Dead letters as a worker writes them, in this order; every third died of a TimeoutError."""
    topics = topics_for(app.settings, "default")
    keep_dead_letters(app.connection.client, topics)
    acks, ids = Acks(len(numbers)), []
    for n in numbers:
        kind = "TimeoutError" if n % 3 == 0 else "ValueError"
        error = JobError(kind, f"report {n} failed", "Traceback ...", utc_now(), "test")
        envelope = app.envelope(JobCall("build_report", args=(n,))).replace(
            attempt=3, last_error=error
        )
        properties = dead_letter_properties(envelope, "no attempts left", topics.jobs, f"1:{n}")
        app.connection.publish(topics.dead, encode(envelope), properties=properties, acks=acks)
        ids.append(envelope.id)
    acks.stored.result(timeout=60)
    return ids


@pytest.fixture
def dead_ids(app: App) -> list[str]:
    dead = topics_for(app.settings, "default").dead
    first = publish_dead(app, range(30))
    with Admin.of(app.settings) as admin:  # the next letters go to a new ledger
        admin._call("PUT", f"{topic_path(dead)}/unload")
        second = publish_dead(app, range(30, LETTERS))
        assert len(admin.internal_stats(dead)["ledgers"]) >= 2
    return first + second


@pytest.fixture
def client(app: App) -> Iterator[Any]:
    with dashboard(app.settings) as found:
        yield found


def every_page(client: Any, params: str) -> tuple[list[str], list[int]]:
    """The job ids of every page followed to the end, and what each page scanned."""
    ids: list[str] = []
    scanned: list[int] = []
    after = ""
    while True:
        page = api(client, f"/dead?queue=default&size={PAGE}{params}&after={after}")["page"]
        ids += [letter["job_id"] for letter in page["items"]]
        scanned.append(page["scanned"])
        if page["next_after"] is None:
            return ids, scanned
        after = page["next_after"]


def test_dead_letters_list_newest_first_and_oldest_first(
    app: App, client: Any, dead_ids: list[str]
) -> None:
    first = api(client, "/dead?queue=default")
    assert first["order"] == "newest"
    assert [letter["job_id"] for letter in first["page"]["items"][:2]] == dead_ids[:-3:-1]
    assert (first["page"]["matched"], first["page"]["scanned"]) == (PAGE, PAGE)

    newest, scanned = every_page(client, "")
    assert newest == dead_ids[::-1]
    assert scanned == [PAGE, PAGE, LETTERS - 2 * PAGE]
    assert every_page(client, "&order=oldest")[0] == dead_ids

    timeouts = [job_id for n, job_id in enumerate(dead_ids) if n % 3 == 0]
    assert every_page(client, "&error=TimeoutError")[0] == timeouts[::-1]
    assert every_page(client, "&error=TimeoutError&order=oldest")[0] == timeouts

    html = client.get("/dead?queue=default&error=Timeout", headers=BEARER).text
    assert 'href="/dead?queue=default&amp;error=Timeout&amp;order=oldest&amp;size=25"' in html
    assert 'name="order" value="newest"' in html  # the filters and the buttons keep it
    bad = client.get("/api/dead?queue=default&order=latest", headers=BEARER)
    assert (bad.status_code, bad.json()) == (
        400,
        {"error": "order must be one of newest, oldest, not 'latest'"},
    )

    latest = first["page"]["items"][0]
    one = {"queue": "default", "one": latest["message_id"]}
    finished(client, post(client, "/dead/delete", one)["task"])
    assert api(client, "/dead?queue=default")["page"]["items"][0]["job_id"] == dead_ids[-2]

    matching = {"queue": "default", "scope": "matching", "error": "TimeoutError", "order": "newest"}
    deleted = finished(client, post(client, "/dead/delete", matching)["task"])
    assert deleted["result"]["matched"] == len(timeouts)
    kept = [job_id for job_id in dead_ids[:-1] if job_id not in timeouts]
    assert every_page(client, "")[0] == kept[::-1]
    assert every_page(client, "&order=oldest")[0] == kept

    listed = cli_json(app.settings, "dlq", "list", "default", "--limit", "3")
    assert [letter["job_id"] for letter in listed] == kept[:-4:-1]
    oldest = cli_json(app.settings, "dlq", "list", "default", "--limit", "3", "--order", "oldest")
    assert [letter["job_id"] for letter in oldest] == kept[:3]
    wrong = cli(app.settings, "dlq", "list", "default", "--order", "latest")
    assert wrong.exit_code == 2 and "use newest or oldest, not 'latest'" in wrong.output
