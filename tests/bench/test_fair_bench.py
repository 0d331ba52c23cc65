"""bench.fair_cost runs end to end on a few hundred jobs: both drains measured; no timing is
checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BrokerUnderTest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.broker


def test_the_fair_queueing_benchmark_drains_both_queues(
    broker: BrokerUnderTest, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PULSARJOBS_SERVICE_URL": broker.service_url,
        "PULSARJOBS_ADMIN_URL": broker.admin_url,
    }
    out = tmp_path / "fair.json"
    command = [sys.executable, "-m", "bench.fair_cost", "--jobs", "400", "--keys", "20",
               "--repeat", "1", "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["errors"] == []
    for kind in ("plain", "fair"):
        assert figures["drain"][kind]["median"]["jobs_per_s"] > 0
    assert figures["ratio"]["jobs_per_s"] > 0
