"""A real broker for benchmarks: the one in PULSARJOBS_SERVICE_URL, else a fresh local one."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pulsarjobs.broker import LocalBroker
from pulsarjobs.broker.process import free_port
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin


@dataclass(frozen=True)
class BenchBroker:
    settings: Settings
    pid: int | None  # of the broker's JVM when this run started it: its CPU is measured too


@contextmanager
def benchmark_broker(
    broker_settings: Mapping[str, str] | None = None, journal_sync: bool = False
) -> Iterator[BenchBroker]:
    """Settings on a namespace of its own, on a broker that serves for the whole run; a broker
    this run starts gets `broker_settings` on top of the launcher's configuration, and fsyncs
    its journal with `journal_sync`."""
    if os.environ.get("PULSARJOBS_SERVICE_URL"):
        if broker_settings or journal_sync:
            raise SystemExit("broker settings apply to a broker the run starts, not to yours")
        yield BenchBroker(fresh_namespace(Settings.from_env()), None)
        return
    data_dir = Path(tempfile.mkdtemp(prefix="pulsarjobs-bench-"))
    broker = LocalBroker(
        data_dir,
        free_port(),
        free_port(),
        free_port(),
        settings=dict(broker_settings or {}),
        journal_sync=journal_sync,
    )
    status = broker.start()
    try:
        settings = Settings(service_url=broker.service_url, admin_url=broker.admin_url)
        yield BenchBroker(fresh_namespace(settings), status.pid)
    finally:
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def benchmark_settings() -> Iterator[Settings]:
    with benchmark_broker() as broker:
        yield broker.settings


def fresh_namespace(settings: Settings) -> Settings:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    with Admin(settings.admin_url, token=settings.token) as admin:
        admin.ensure_namespace(f"{settings.tenant}/{namespace}")
    return settings.with_changes(namespace=namespace)
