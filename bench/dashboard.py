"""The dashboard under a deep backlog: how long its pages take to answer.

    python -m bench.dashboard                                 # 1,000,000 waiting, 100,000 dead
    python -m bench.dashboard --waiting 20000 --dead 2000     # a quick look

It starts a local Pulsar (unless PULSARJOBS_SERVICE_URL names one), fills a queue with waiting
jobs and its dead-letter topic with dead letters (one in a hundred died of a TimeoutError, the
rest of a ValueError), starts `pulsarjobs dashboard` as a user would, and times each page over
real HTTP, `--repeat` times: the home page, the queues page, the first page of the Dead page,
and a Dead search filtered by error text over every dead letter. The figures go to
bench/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.broker import benchmark_broker
from bench.environment import environment
from pulsarjobs import App
from pulsarjobs.app import JobCall
from pulsarjobs.broker.process import free_port
from pulsarjobs.clock import utc_now
from pulsarjobs.dashboard.state import POLL_SECONDS
from pulsarjobs.settings import Settings
from pulsarjobs.transport.connection import Acks
from pulsarjobs.transport.topics import topics_for
from pulsarjobs.wire.envelope import JobError, encode
from pulsarjobs.wire.verdicts import Outcome, Verdict
from pulsarjobs.worker.feed import keep_dead_letters
from pulsarjobs.worker.settle import Delivery, dead_letter_properties

QUEUE = "default"
SEARCHED = "TimeoutError"  # the error of one dead letter in a hundred
CHUNK = 5_000  # jobs per enqueue_many call
FRESH_AFTER_S = POLL_SECONDS  # pages share one broker reading for a little less than this
RESULTS = Path(__file__).parent / "results" / "dashboard.json"
ROOT = Path(__file__).resolve().parent.parent


def parse_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--waiting", type=int, default=1_000_000)
    parser.add_argument("--dead", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="times each page is asked for")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def fill_waiting(app: App, count: int) -> float:
    """`count` jobs waiting on the queue; returns how long enqueueing them took."""
    started = time.perf_counter()
    for first in range(0, count, CHUNK):
        last = min(count, first + CHUNK)
        calls = [JobCall("send_email", args=(f"user{n}@example.com", n), queue=QUEUE)
                 for n in range(first, last)]  # fmt: skip
        app.enqueue_many(calls)
        say(f"waiting: {last:,} of {count:,}", end="\r")
    say("")
    return time.perf_counter() - started


def fill_dead(app: App, count: int) -> float:
    """`count` dead letters, written as a worker writes them (envelope, last error, reason)."""
    topics = topics_for(app.settings, QUEUE)
    keep_dead_letters(app.connection.client, topics)
    started = time.perf_counter()
    for first in range(0, count, CHUNK):
        last = min(count, first + CHUNK)
        acks = Acks(last - first)
        for n in range(first, last):
            data, properties = dead_letter(app, n)
            app.connection.publish(topics.dead, data, properties=properties, acks=acks)
        acks.stored.result()
        say(f"dead: {last:,} of {count:,}", end="\r")
    say("")
    return time.perf_counter() - started


def dead_letter(app: App, n: int) -> tuple[bytes, dict[str, str]]:
    kind = SEARCHED if n % 100 == 0 else "ValueError"
    error = JobError(kind, f"report {n} failed", "Traceback (most recent call last): ...",
                     utc_now(), "bench")  # fmt: skip
    call = JobCall("build_report", args=(n,), queue=QUEUE)
    envelope = app.envelope(call).replace(attempt=3, last_error=error)
    outcome = Outcome(Verdict.DEAD, envelope, reason="failed 3 times: no attempts left")
    delivery = Delivery(topics_for(app.settings, QUEUE).jobs, f"1:{n}", b"")
    return encode(envelope), dead_letter_properties(delivery, outcome)


def start_dashboard(settings: Settings, port: int, token: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PULSARJOBS_SERVICE_URL": settings.service_url,
        "PULSARJOBS_ADMIN_URL": settings.admin_url,
        "PULSARJOBS_NAMESPACE": settings.namespace,
        "PULSARJOBS_DASHBOARD_TOKEN": token,
    }
    command = [sys.executable, "-m", "pulsarjobs", "dashboard", "--port", str(port)]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)


def time_pages(base: str, token: str, pages: dict[str, str], repeat: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    timings: dict[str, Any] = {}
    with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
        wait_for(http)
        for name, path in pages.items():
            seconds = []
            for _ in range(repeat):
                time.sleep(FRESH_AFTER_S)  # past the dashboard's shared reading: a fresh one
                started = time.perf_counter()
                response = http.get(path)
                seconds.append(time.perf_counter() - started)
                response.raise_for_status()
            timings[name] = {
                "path": path,
                "median_s": round(statistics.median(seconds), 3),
                "max_s": round(max(seconds), 3),
                "runs_s": [round(s, 3) for s in seconds],
            }
            say(f"{name:>14}: median {timings[name]['median_s']:.3f} s  ({path})")
    return timings


def wait_for(http: httpx.Client, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http.get("/api/home").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit("the dashboard did not answer within a minute")


def say(line: str, end: str = "\n") -> None:
    print(line, end=end, file=sys.stderr, flush=True)


PAGES = {
    "home": "/",
    "queues": "/queues",
    "queue_first_page": f"/queues/{QUEUE}",
    "dead_first_page": f"/dead?queue={QUEUE}",
    "dead_filtered_first_page": f"/dead?queue={QUEUE}&error={SEARCHED}",
    "api_home": "/api/home",
}


def search_dead(base: str, token: str, repeat: int) -> dict[str, Any]:
    """A Dead search by error text over every dead letter: its pages followed to the end."""
    headers = {"Authorization": f"Bearer {token}"}
    runs = []
    with httpx.Client(base_url=base, headers=headers, timeout=300) as http:
        for _ in range(repeat):
            started, after, matched, scanned, pages = time.perf_counter(), "", 0, 0, 0
            while True:
                path = f"/api/dead?queue={QUEUE}&error={SEARCHED}&size=100&after={after}"
                page = http.get(path).raise_for_status().json()["page"]
                matched, scanned, pages = (
                    matched + page["matched"],
                    scanned + page["scanned"],
                    pages + 1,
                )
                if page["next_after"] is None:
                    break
                after = page["next_after"]
            runs.append({"seconds": round(time.perf_counter() - started, 2), "matched": matched,
                         "scanned": scanned, "pages": pages})  # fmt: skip
            say(f"  dead search: {runs[-1]}")
    return {"error_text": SEARCHED, "runs": runs,
            "median_s": statistics.median(run["seconds"] for run in runs)}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_options(argv)
    with benchmark_broker() as broker:
        settings = broker.settings
        app = App(settings)
        fill = {"waiting_s": fill_waiting(app, options.waiting),
                "dead_s": fill_dead(app, options.dead)}  # fmt: skip
        app.close()
        port, token = free_port(), secrets.token_urlsafe(16)
        dashboard = start_dashboard(settings, port, token)
        try:
            base = f"http://127.0.0.1:{port}"
            timings = time_pages(base, token, PAGES, options.repeat)
            search = search_dead(base, token, max(1, options.repeat // 2))
        finally:
            dashboard.terminate()
            dashboard.wait(30)
        result = {
            "environment": environment(settings, None),
            "waiting": options.waiting,
            "dead": options.dead,
            "fill_seconds": {key: round(value, 1) for key, value in fill.items()},
            "pages": timings,
            "dead_search": search,
        }
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(result, indent=2) + "\n")
    say(f"written to {options.output}")


if __name__ == "__main__":
    main()
