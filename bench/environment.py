"""What the figures were measured on: machine, Python, broker and library versions."""

from __future__ import annotations

import contextlib
import os
import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import httpx

from pulsarjobs.settings import Settings

LIBRARIES = (
    "pulsarjobs",
    "pulsar-client",
    "fastavro",
    "celery",
    "kombu",
    "billiard",
    "dramatiq",
    "redis",
    "matplotlib",
)


def environment(settings: Settings, redis_url: str | None) -> dict[str, Any]:
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_average_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "pulsar": pulsar_version(settings),
        "redis_server": redis_version(redis_url),
        "libraries": {name: version(name) for name in LIBRARIES},
    }


def cpu_model() -> str | None:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def pulsar_version(settings: Settings) -> str | None:
    try:
        response = httpx.get(f"{settings.admin_url}/admin/v2/brokers/version", timeout=10)
        return response.text.strip().strip('"') if response.status_code == 200 else None
    except httpx.HTTPError:
        return None


def redis_version(redis_url: str | None) -> str | None:
    if redis_url is None:
        return None
    import redis

    return str(redis.Redis.from_url(redis_url).info("server")["redis_version"])


def version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
