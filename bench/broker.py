"""A real broker for benchmarks: the one in PULSARJOBS_SERVICE_URL, else a fresh local one."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pulsarjobs.admin import Admin
from pulsarjobs.broker import LocalBroker
from pulsarjobs.broker.launcher import free_port
from pulsarjobs.settings import Settings


@contextmanager
def benchmark_settings() -> Iterator[Settings]:
    """Settings on a namespace of its own, on a broker that serves for the whole run."""
    if os.environ.get("PULSARJOBS_SERVICE_URL"):
        yield fresh_namespace(Settings.from_env())
        return
    data_dir = Path(tempfile.mkdtemp(prefix="pulsarjobs-bench-"))
    broker = LocalBroker(data_dir, free_port(), free_port(), free_port())
    broker.start()
    try:
        yield fresh_namespace(Settings(service_url=broker.service_url, admin_url=broker.admin_url))
    finally:
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def fresh_namespace(settings: Settings) -> Settings:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    with Admin(settings.admin_url, token=settings.token) as admin:
        admin.ensure_namespace(f"{settings.tenant}/{namespace}")
    return settings.with_changes(namespace=namespace)
