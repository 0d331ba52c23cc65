"""One JVM of a local Pulsar (standalone, ZooKeeper, bookie or broker) run in the background.

Its pid file and log live in the launcher's data directory, so a later command (`status`,
`stop`) finds it again; a recorded pid counts only while that pid still runs our main class
with our config file (pids get reused).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pulsarjobs.broker.java import Jdk

State = Literal["running", "stopped", "stale"]

# What Pulsar's own launch script opens, so that the broker's metrics need no reflection hacks.
ADD_OPENS = (
    "java.base/java.io",
    "java.base/java.util.zip",
    "java.base/sun.net",
    "java.base/jdk.internal.platform",
    "java.management/sun.management",
    "jdk.management/com.sun.management.internal",
)


@dataclass
class JavaProcess:
    main_class: str
    conf_file: Path  # on the command line of this process only: how we recognise it
    pid_file: Path
    log_file: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        """The pid of the running process, None when it is stopped or stale."""
        pid = self.recorded_pid()
        return pid if pid is not None and self._is_ours(pid) else None

    def state(self) -> State:
        pid = self.recorded_pid()
        if pid is None:
            return "stopped"
        return "running" if self._is_ours(pid) else "stale"

    def recorded_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def spawn(self, command: Sequence[str], cwd: Path) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the starting terminal must not reach it
            )
        self.pid_file.write_text(f"{self._process.pid}\n")

    def exited(self) -> bool:
        """The process this object spawned has exited (a failed start)."""
        if self._process is None or self._process.poll() is None:
            return False
        self.pid_file.unlink(missing_ok=True)
        return True

    def stop(self, timeout: float = 60.0) -> bool:
        """SIGTERM, then SIGKILL after `timeout`; True when it was running."""
        pid = self.pid
        if pid is None:
            self.pid_file.unlink(missing_ok=True)  # a stale pid file goes too
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_for_exit(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            self._wait_for_exit(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> bool:
        """kill -9, as a crash would: no clean shutdown. True when it was running."""
        pid = self.pid
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        self._wait_for_exit(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 50) -> list[str]:
        try:
            return self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return []

    def log_size(self) -> int:
        try:
            return self.log_file.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int, limit: int = 4_000_000) -> str:
        try:
            with self.log_file.open("rb") as log:
                log.seek(offset)
                return log.read(limit).decode(errors="replace")
        except OSError:
            return ""

    def _is_ours(self, pid: int) -> bool:
        if self._process is not None and self._process.pid == pid:
            return self._process.poll() is None
        command = process_command(pid)
        return self.main_class in command and str(self.conf_file) in command

    def _wait_for_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.pid == pid:
                if self._process.poll() is not None:
                    return True
            elif not process_alive(pid):
                return True
            time.sleep(0.1)
        return False


def java_command(
    jdk: Jdk,
    jars: str,
    main_class: str,
    arguments: Sequence[str],
    *,
    heap: str,
    direct_memory: str = "1g",
    log_config: Path,
    properties: Mapping[str, str] | None = None,
) -> list[str]:
    command = [str(jdk.java), "-Xms64m", f"-Xmx{heap}", f"-XX:MaxDirectMemorySize={direct_memory}"]
    command += [f"--add-opens={module}=ALL-UNNAMED" for module in ADD_OPENS]
    command.append("-Dio.netty.tryReflectionSetAccessible=true")
    if jdk.version[0] >= 22:
        # Netty and RocksDB use native access and Unsafe; newer JDKs warn unless allowed.
        command.append("--enable-native-access=ALL-UNNAMED")
    if jdk.version[0] >= 24:
        command.append("--sun-misc-unsafe-memory-access=allow")
    command.append(f"-Dlog4j.configurationFile={log_config}")
    command += [f"-D{key}={value}" for key, value in (properties or {}).items()]
    return [*command, "-cp", jars, main_class, *arguments]


def startup_failure(log: list[str]) -> str:
    """The most telling line of a failed start: the deepest cause of the first exception."""
    causes = [line for line in log if line.startswith("Caused by:")]
    if causes:
        return causes[-1].removeprefix("Caused by:").strip()
    errors = [line for line in log if " ERROR " in line or "Exception" in line]
    return errors[0].strip() if errors else (log[-1].strip() if log else "no output")


def process_command(pid: int) -> str:
    if Path("/proc/self").exists():
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return ""
    done = subprocess.run(
        ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return done.stdout


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is gone in all but name
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
