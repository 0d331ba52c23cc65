"""Worker processes under measurement: started in a session of their own, read from /proc,
stopped whole once the figures are taken."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
POLL_SECONDS = 0.05
STALL_SECONDS = 90.0  # no progress for this long: the worker is stuck, the run fails
STOP_SECONDS = 10.0  # a stop waits this long for the workers to end, then kills them


class WorkerFailed(RuntimeError):
    pass


@dataclass
class Workers:
    """One or more worker commands (e.g. two bare consumers), each with its children."""

    processes: list[subprocess.Popen[bytes]]
    log: Path

    @classmethod
    def start(cls, commands: Sequence[Sequence[str]], env: dict[str, str], log: Path) -> Workers:
        with log.open("ab") as out:
            processes = [
                subprocess.Popen(
                    command,
                    env=env,
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                for command in commands
            ]
        return cls(processes, log)

    def pids(self) -> list[int]:
        """Every live process of the workers: the commands and their descendants."""
        parents = parent_map()
        found = [p.pid for p in self.processes if p.poll() is None]
        index = 0
        while index < len(found):
            found += [pid for pid, parent in parents.items() if parent == found[index]]
            index += 1
        return found

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def peak_rss_mb(self) -> tuple[float, float]:
        """Peak resident memory (VmHWM): summed over the processes, and the largest one."""
        peaks = [peak_rss_kb(pid) / 1024 for pid in self.pids()]
        return sum(peaks), max(peaks, default=0.0)

    def check_alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise WorkerFailed(f"a worker exited with {process.returncode}:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """Stop them as a deployment does, once measured: a pulsarjobs worker writes its job
        index's last entries as it stops. Killed, it leaves every job it ran in the last few
        seconds indexed as waiting, and a run of drains leaves over a million such entries,
        which the broker's compaction then holds in its heap every minute (full GCs of up to
        0.5 s, stalling the next runs' deliveries)."""
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        ends = time.monotonic() + STOP_SECONDS
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, ends - time.monotonic()))
        self.kill()  # what did not end in time, and any child left behind

    def kill(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


def parent_map() -> dict[int, int]:
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                parents[int(entry.name)] = int(stat_fields(int(entry.name))[1])
    return parents


def stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (which may hold spaces): state, ppid, ..."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    try:
        fields = stat_fields(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def peak_rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def watch_drain(
    workers: Workers, pending: Callable[[], int], count: int, server_pid: int | None = None
) -> dict[str, float]:
    """Poll the queue until 90% of `count` jobs are gone; the figures cover 10% to 90%. With
    `server_pid`, the broker's (or Redis') CPU is measured too."""
    marks: dict[float, tuple[float, float, float]] = {}  # done -> (time, worker CPU, server CPU)
    previous = (time.perf_counter(), 0.0)
    progressed_at = previous[0]
    while 0.9 not in marks:
        workers.check_alive()
        done = 1 - pending() / count
        now = time.perf_counter()
        for mark in (0.1, 0.9):
            if done >= mark and mark not in marks:
                server = cpu_seconds(server_pid) if server_pid else 0.0
                marks[mark] = (crossing(previous, (now, done), mark), workers.cpu_seconds(), server)
        if done > previous[1]:
            progressed_at = now
        elif now - progressed_at > STALL_SECONDS:
            raise WorkerFailed(f"no job done for {STALL_SECONDS:.0f} s:\n{workers.tail()}")
        previous = (now, done)
        time.sleep(POLL_SECONDS)
    rss_total, rss_largest = workers.peak_rss_mb()
    (start, cpu_start, server_start), (end, cpu_end, server_end) = marks[0.1], marks[0.9]
    jobs = 0.8 * count
    figures = {
        "jobs_per_s": jobs / max(end - start, 1e-6),
        "cpu_s_per_1000": (cpu_end - cpu_start) / jobs * 1000,
        "peak_rss_mb": rss_total,
        "peak_rss_mb_largest_process": rss_largest,
    }
    if server_pid:
        figures["server_cpu_s_per_1000"] = (server_end - server_start) / jobs * 1000
    return figures


def crossing(before: tuple[float, float], after: tuple[float, float], mark: float) -> float:
    """When `done` passed `mark`, interpolated between two polls."""
    (t0, d0), (t1, d1) = before, after
    if d1 <= d0:
        return t1
    return t0 + (t1 - t0) * min(max((mark - d0) / (d1 - d0), 0.0), 1.0)
