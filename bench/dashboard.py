"""The dashboard under a deep backlog: how long its pages take to answer, and what one open tab
costs the dashboard process.

    python -m bench.dashboard            # 1,000,000 waiting, 200,000 scheduled, 100,000 dead
    python -m bench.dashboard --waiting 20000 --scheduled 4000 --retries 200 --dead 2000 \
        --tab-seconds 30                 # a quick look

It starts a local Pulsar (unless PULSARJOBS_SERVICE_URL names one), fills one queue (see
dashboard_fill.py: waiting jobs, scheduled ones, retries, and dead letters of which one in a
hundred died of a TimeoutError), starts `pulsarjobs dashboard` as a user would, waits until its
counts are exact (the first reading of a deep backlog goes on over several refreshes), and times
each page over real HTTP, `--repeat` times, each after the shared reading expired: Home, Queues,
the first page of each list (the queue's waiting jobs, Scheduled, Retries, Dead newest and oldest
first, Dead filtered), a job found by its id (/jobs/ID and the search box; one asked as soon as
the dashboard answers, before the rest), then a Dead search by
error text through every dead letter. Last, the dashboard's CPU per minute with one headless
Chromium tab open on Home, then on Queues (and with none). The figures go to
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
from bench.dashboard_fill import (
    QUEUE,
    SEARCHED,
    fill_dead,
    fill_retries,
    fill_scheduled,
    fill_waiting,
    say,
    timed,
)
from bench.dashboard_tab import cpu_per_open_tab
from bench.environment import environment
from pulsarjobs import App
from pulsarjobs.broker.process import free_port
from pulsarjobs.dashboard.state import POLL_SECONDS
from pulsarjobs.settings import Settings

FRESH_AFTER_S = POLL_SECONDS  # pages share one broker reading for a little less than this
RESULTS = Path(__file__).parent / "results" / "dashboard.json"
ROOT = Path(__file__).resolve().parent.parent


def parse_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--waiting", type=int, default=1_000_000)
    parser.add_argument("--scheduled", type=int, default=200_000)
    parser.add_argument("--retries", type=int, default=10_000)
    parser.add_argument("--dead", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="times each page is asked for")
    parser.add_argument("--tab-seconds", type=float, default=180, help="per open tab measured")
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


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


def time_pages(http: httpx.Client, pages: dict[str, str], repeat: int) -> dict[str, Any]:
    timings: dict[str, Any] = {}
    for name, path in pages.items():
        seconds = []
        for _ in range(repeat):
            time.sleep(FRESH_AFTER_S)  # past the dashboard's shared reading: a fresh one
            started = time.perf_counter()
            response = http.get(path)
            seconds.append(time.perf_counter() - started)
            if response.status_code >= 400:  # the search box answers with a redirect
                raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
        timings[name] = {
            "path": path,
            "median_s": round(statistics.median(seconds), 3),
            "max_s": round(max(seconds), 3),
            "runs_s": [round(s, 3) for s in seconds],
        }
        say(f"{name:>26}: median {timings[name]['median_s']:.3f} s  ({path})")
    return timings


def first_lookup(http: httpx.Client, job_id: str, timeout: float = 120.0) -> dict[str, float]:
    """A job asked for by id as soon as the dashboard answers at all: the seconds from its start
    until it answers /livez, and those of that lookup, which waits for the index's read at start
    (the entries it read itself: none once that read is through)."""
    started = time.monotonic()
    while True:
        try:
            http.get("/livez").raise_for_status()
            break
        except httpx.TransportError:
            if time.monotonic() - started > timeout:
                raise SystemExit("the dashboard did not answer within 2 minutes") from None
            time.sleep(0.05)
    serving = time.monotonic()
    found = http.get(f"/api/jobs/{job_id}").raise_for_status().json()["located"]
    done = time.monotonic()
    return {"serving_after_s": round(serving - started, 2), "lookup_s": round(done - serving, 2),
            "index_read_by_lookup": found["index_read"]}  # fmt: skip


def until_exact(http: httpx.Client, timeout: float = 1200.0) -> float:
    """Seconds until the dashboard answers with exact counts (its first reading through)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if http.get("/api/home").json()["totals"]["exact"]:
                return time.monotonic() - started
        except (httpx.TransportError, ValueError, KeyError):
            pass
        time.sleep(1)
    raise SystemExit("the dashboard's counts were not exact within 20 minutes")


def pages(waiting_id: str, dead_id: str) -> dict[str, str]:
    return {
        "home": "/",
        "queues": "/queues",
        "queue_first_page": f"/queues/{QUEUE}",
        "scheduled_first_page": f"/scheduled?queue={QUEUE}",
        "retries_first_page": f"/retries?queue={QUEUE}",
        "dead_newest_first_page": f"/dead?queue={QUEUE}",
        "dead_oldest_first_page": f"/dead?queue={QUEUE}&order=oldest",
        "dead_filtered_first_page": f"/dead?queue={QUEUE}&error={SEARCHED}",
        "job_by_id_waiting": f"/jobs/{waiting_id}",
        "job_by_id_dead": f"/jobs/{dead_id}",
        "search_box_by_id": f"/search?q={waiting_id}",
        "api_home": "/api/home",
    }


def search_dead(http: httpx.Client, repeat: int, order: str = "newest") -> dict[str, Any]:
    """A Dead search by error text over every dead letter: its pages followed to the end."""
    runs = []
    for _ in range(repeat):
        started, after, matched, scanned, count = time.perf_counter(), "", 0, 0, 0
        while True:
            path = f"/api/dead?queue={QUEUE}&error={SEARCHED}&size=100&order={order}&after={after}"
            page = http.get(path).raise_for_status().json()["page"]
            matched, scanned, count = (
                matched + page["matched"],
                scanned + page["scanned"],
                count + 1,
            )
            if page["next_after"] is None:
                break
            after = page["next_after"]
        took = time.perf_counter() - started
        runs.append({"seconds": round(took, 2), "matched": matched, "scanned": scanned,
                     "pages": count, "scanned_per_s": round(scanned / took)})  # fmt: skip
        say(f"  dead search: {runs[-1]}")
    return {
        "error_text": SEARCHED,
        "runs": runs,
        "median_s": statistics.median(run["seconds"] for run in runs),
        "median_scanned_per_s": statistics.median(run["scanned_per_s"] for run in runs),
    }


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_options(argv)
    with benchmark_broker() as broker:
        settings = broker.settings
        load_before = os.getloadavg()
        app = App(settings)
        waiting, waiting_s = timed(fill_waiting, app, options.waiting)
        _, scheduled_s = timed(fill_scheduled, app, options.scheduled)
        _, retries_s = timed(fill_retries, app, options.retries)
        dead, dead_s = timed(fill_dead, app, options.dead)
        app.close()  # the job index's last entries sent
        fill = {"waiting_s": waiting_s, "scheduled_s": scheduled_s, "retries_s": retries_s,
                "dead_s": dead_s}  # fmt: skip
        port, token = free_port(), secrets.token_urlsafe(16)
        dashboard = start_dashboard(settings, port, token)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        try:
            with httpx.Client(base_url=base, headers=headers, timeout=300) as http:
                at_start = first_lookup(http, waiting[len(waiting) // 3])
                say(f"a lookup as soon as it serves: {at_start}")
                exact_s = until_exact(http)
                say(f"counts exact after {exact_s:.0f} s")
                # the middle of the waiting backlog, and the newest dead letter
                timings = time_pages(http, pages(waiting[len(waiting) // 2], dead[-1]),
                                     options.repeat)  # fmt: skip
                search = search_dead(http, max(1, options.repeat // 2))
                search_oldest = search_dead(http, max(1, options.repeat // 2), "oldest")
            opened = {"home": "/", "queues": "/queues"}
            tabs = cpu_per_open_tab(dashboard.pid, base, token, opened, options.tab_seconds)
            say(f"  CPU per open tab: {tabs}")
        finally:
            dashboard.terminate()
            dashboard.wait(30)
        result = {
            "command": "python -m bench.dashboard " + " ".join(argv or sys.argv[1:]),
            "environment": environment(settings, None),
            "load_average": {"before_fill": load_before, "at_end": os.getloadavg()},
            "waiting": options.waiting,
            "scheduled": options.scheduled,
            "retries": options.retries,
            "dead": options.dead,
            "fill_seconds": {key: round(value, 1) for key, value in fill.items()},
            "first_exact_s": round(exact_s, 1),
            "job_by_id_at_start": at_start,
            "pages": timings,
            "dead_search": search,
            "dead_search_oldest_first": search_oldest,
            "cpu_per_open_tab": tabs,
        }
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(result, indent=2) + "\n")
    say(f"written to {options.output}")


if __name__ == "__main__":
    main()
