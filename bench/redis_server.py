"""A throwaway Redis for the peers (Celery, Dramatiq): Debian's redis-server, no persistence."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pulsarjobs.broker.process import free_port

INSTALL_HINT = "install it with `apt-get install -y redis-server` (Debian/Ubuntu)"
PEER_PACKAGES = ("celery", "dramatiq", "redis")


def missing() -> str | None:
    """Why the peers (Celery, Dramatiq) cannot run here, or None when they can."""
    if shutil.which("redis-server") is None:
        return f"redis-server is not installed: {INSTALL_HINT}"
    absent = [name for name in PEER_PACKAGES if importlib.util.find_spec(name) is None]
    if absent:
        return f"{', '.join(absent)} not installed: pip install -e '.[bench]'"
    return None


@dataclass(frozen=True)
class RedisServer:
    url: str
    pid: int


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A redis-server on a free port for the whole run."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit(f"redis-server is not installed: {INSTALL_HINT}, or pass --without-peers")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pulsarjobs-bench-redis-") as directory:
        log = Path(directory) / "redis.log"
        process = subprocess.Popen(
            [
                executable,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                directory,
                "--logfile",
                str(log),
            ],
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            wait_for(url, process, log)
            yield RedisServer(url, process.pid)
        finally:
            process.terminate()
            process.wait(30)


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"redis-server exited at start:\n{log.read_text()[-2000:]}")
        try:
            client.ping()
            return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not answer within 30 s")
