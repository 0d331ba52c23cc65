"""The benchmark harness runs end to end on a few hundred jobs: no timing is checked here.

Celery and Dramatiq take part when redis-server and the `bench` extra are installed; without
them, the Pulsar systems still run and the peer test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.redis_server import missing
from tests.conftest import BrokerUnderTest

ROOT = Path(__file__).resolve().parents[2]
PULSAR_SYSTEMS = ("bare", "pj_async", "pj_sync", "pj_sync_mixed")
PEERS = ("celery", "dramatiq")
QUICK = ["--jobs", "300", "--repeat", "1", "--latency-seconds", "1", "--loads", "20",
         "--scheduled", "200", "--schedule-seconds", "2"]  # fmt: skip

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def results(broker: BrokerUnderTest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    env = {
        **os.environ,
        "PULSARJOBS_SERVICE_URL": broker.service_url,
        "PULSARJOBS_ADMIN_URL": broker.admin_url,
    }
    peers = [] if missing() is None else ["--without-peers"]
    command = [sys.executable, "-m", "bench.run", *QUICK, *peers,
               "--out", str(out / "latest.json"), "--plot", str(out / "plot.png")]  # fmt: skip
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads((out / "latest.json").read_text()))


def check_system(results: dict[str, Any], name: str) -> None:
    for processes in ("1", "2"):
        median = results["drain"][processes][name]["median"]
        assert median["jobs_per_s"] > 0
        assert median["cpu_s_per_1000"] >= 0  # may round to 0 over so few jobs
        assert median["peak_rss_mb"] > 0
    if not name.startswith("pj_sync"):  # one pulsarjobs flavour is enough for latency
        for load in results["latency"]["rates"]:
            median = results["latency"][load][name]["median"]
            assert median["handled"] == median["sent"] > 0
            assert 0 < median["p50_ms"] <= median["p99_ms"] <= median["p999_ms"]


def test_the_pulsar_systems_are_measured(results: dict[str, Any]) -> None:
    assert results["errors"] == []
    for name in PULSAR_SYSTEMS:
        check_system(results, name)
    assert results["enqueue"]["pulsarjobs"]["single"]["median"] > 0
    assert results["enqueue"]["pulsarjobs"]["bulk"]["median"] > 0
    assert results["ratios"]["drain_vs_raw"] > 0
    scheduled = results["scheduled"]["median"]
    assert scheduled["handled"] == scheduled["jobs"] == 200
    assert scheduled["early"] == 0
    assert results["environment"]["cpu_count"] >= 1


def test_celery_and_dramatiq_are_measured(results: dict[str, Any]) -> None:
    if reason := missing():
        pytest.skip(f"peers not measured: {reason}")
    for name in PEERS:
        check_system(results, name)
        assert results["enqueue"][name]["single"]["median"] > 0
        assert results["enqueue"][name]["bulk"]["median"] > 0
    assert results["ratios"]["drain_vs_celery"] > 0
    assert results["ratios"]["drain_vs_dramatiq"] > 0
