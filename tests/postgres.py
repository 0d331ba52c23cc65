"""A real PostgreSQL for the outbox's tests: Debian's server binaries (the `postgresql`
package, which scripts/bootstrap installs), a cluster in a temporary directory on a free port,
stopped and removed at the end. As root it runs as `nobody`: initdb and postgres refuse root.
PULSARJOBS_TEST_DATABASE_URL names a PostgreSQL you run instead."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pulsarjobs.broker.process import free_port

UNPRIVILEGED = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def server_binaries() -> Path | None:
    """The directory of initdb and postgres: Debian's newest, or on the PATH."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_version)
    if debian:
        return debian[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _version(initdb: Path) -> int:
    name = initdb.parents[1].name
    return int(name) if name.isdigit() else 0


def launched_postgres(unavailable: Callable[[str], None]) -> Iterator[str]:
    """Yields the SQLAlchemy URL of a fresh PostgreSQL; `unavailable(reason)` when none can be
    had (it fails or skips)."""
    if url := os.environ.get("PULSARJOBS_TEST_DATABASE_URL"):
        yield url
        return
    binaries = server_binaries()
    if binaries is None:
        unavailable(
            "no PostgreSQL server (initdb): install Debian's postgresql (scripts/bootstrap does)"
        )
        return
    as_user = UNPRIVILEGED if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="pulsarjobs-test-postgres-"))
    if as_user:
        shutil.chown(home, "nobody", "nogroup")
    data, log, port = home / "data", home / "postgres.log", free_port()
    initdb = [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
              "-E", "UTF8", "--no-sync"]  # fmt: skip
    done = subprocess.run([*as_user, *initdb], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        shutil.rmtree(home, ignore_errors=True)
        unavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
        return
    server = [str(binaries / "postgres"), "-D", str(data), "-p", str(port), "-k", str(home),
              "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen([*as_user, *server], stdout=out, stderr=subprocess.STDOUT)
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    try:
        if not _answers(port, process):
            unavailable(f"PostgreSQL did not start: {log.read_text()[-500:]}")
            return
        yield url
    finally:
        process.send_signal(signal.SIGINT)  # a fast shutdown: ends what clients are left
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(home, ignore_errors=True)


def _answers(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
    import psycopg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres").close()
            return True
        except psycopg.OperationalError:
            time.sleep(0.1)
    return False
