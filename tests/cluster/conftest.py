"""A real Pulsar cluster for the failure tests: ZooKeeper, three bookies and two brokers, started
by the project's launcher on free ports in a temporary directory and stopped at the end of the
module (test_security.py starts one of its own with --auth --tls: one cluster at a time).

Run them alone with `pytest -m cluster`. PULSARJOBS_TEST_CLUSTER_DIR names the data directory of
a cluster you started (`pulsarjobs cluster start --data-dir DIR`) to use instead; it is left
running. The tests use small sizes unless PULSARJOBS_TEST_CLUSTER_FULL=1 (the sizes of the
measurements in docs/scaling.md).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulsarjobs.broker.cluster import LocalCluster
from pulsarjobs.broker.cluster_ports import ClusterPorts
from pulsarjobs.errors import PulsarJobsError
from tests.conftest import discard, unavailable


@pytest.fixture(scope="module")  # stopped before another module starts a cluster of its own
def cluster() -> Iterator[LocalCluster]:
    if given := os.environ.get("PULSARJOBS_TEST_CLUSTER_DIR"):
        yield LocalCluster.at(Path(given))
        return
    data_dir = Path(tempfile.mkdtemp(prefix="pulsarjobs-test-cluster-"))
    local = LocalCluster(data_dir=data_dir, ports=ClusterPorts.free())
    try:
        try:
            local.start()
        except PulsarJobsError as exc:
            unavailable(f"could not start a local Pulsar cluster: {exc}")
        yield local
    finally:
        discard(local)
        shutil.rmtree(data_dir, ignore_errors=True)
