"""bench.job_index_cost runs end to end on a few jobs: every figure arrives, and the lookup reads
the entries the run wrote; no timing is checked beyond what always holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BrokerUnderTest

ROOT = Path(__file__).resolve().parents[2]
JOBS = 200

pytestmark = pytest.mark.broker


def test_the_job_index_benchmark_measures_every_figure(broker: BrokerUnderTest) -> None:
    env = {
        **os.environ,
        "PULSARJOBS_SERVICE_URL": broker.service_url,
        "PULSARJOBS_ADMIN_URL": broker.admin_url,
    }
    command = [sys.executable, "-m", "bench.job_index_cost", "--jobs", str(JOBS), "--number", "5"]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout[done.stdout.index("{") :])
    for way in ("indexed", "unindexed"):
        assert figures[f"enqueue_cpu_us_{way}"] > 0
        assert figures[f"enqueue_ms_{way}"] > 0
    assert figures["index_entries_read"] >= JOBS  # the jobs it enqueued, indexed
    assert figures["settle_told_cpu_us"] > 0 and figures["settle_sent_cpu_us"] > 0
