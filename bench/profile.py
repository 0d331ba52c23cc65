"""Where a pulsarjobs worker spends its time per job: py-spy on one worker draining no-op jobs.

    python -m bench.profile --jobs 50000 [--job noop_sync] [--processes 2] [--idle]

Preloads the jobs, starts `pulsarjobs worker` (one process, or `--processes N` under their
supervisor: the first worker process is sampled, the others drain beside it unsampled), samples
it with py-spy from 10% to 90% drained, and prints, per thread, how busy it was (share of the
sampling ticks in which it held the GIL) and the functions seen most in its samples: by own
time (the frame running) and by total time (anywhere on the stack; frames on every stack left
out). py-spy pauses the worker for each sample (without that, a third of the stacks come out
torn), so it drains slower while sampled: read the shares, not the rate.

--every-thread samples threads without the GIL too, but py-spy then counts some idle threads
(the event loop's default executor, waiting for work) as busy. --idle samples every thread at
every tick, idle or not: "own time" then says where each thread waits (e.g. in `receive`, in a
lock's `acquire`, in the event loop's `select`), and "busy" is 100% for every thread.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.broker import benchmark_broker
from bench.systems import PulsarjobsClient, Tuning, pulsar_systems, worker_env
from bench.workers import ROOT, Workers, watch_drain
from pulsarjobs.logs import configure_logging
from pulsarjobs.settings import Settings

# Frames read `function (path/to/file.py:line)`: keep the path from the package on.
_LIBRARIES = r"[^()]*/(?:site-packages|lib/python3\.\d+)/"
_PATH = re.compile(rf"\((?:{_LIBRARIES}|{re.escape(str(ROOT))}/)")
_LINE = re.compile(r":\d+\)$")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--job", default="noop_async", choices=("noop_async", "noop_sync"))
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--prefetch", type=int, default=1000, help="as in bench.run")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--processes", type=int, default=1, help="worker processes; one sampled")
    parser.add_argument("--every-thread", action="store_true", help="not only the GIL holder")
    parser.add_argument("--idle", action="store_true", help="every thread, idle ones too")
    parser.add_argument("--top", type=int, default=25)
    options = parser.parse_args()
    if shutil.which("py-spy") is None and not Path(sys.executable).with_name("py-spy").exists():
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    configure_logging("console", "warning")
    with benchmark_broker() as broker, tempfile.TemporaryDirectory() as directory:
        stacks, seconds = profile(broker.settings, options, Path(directory))
    print(summary(stacks, options.top, ticks=seconds * options.rate))


def profile(
    settings: Settings, options: argparse.Namespace, work: Path
) -> tuple[Counter[tuple[str, ...]], float]:
    """The stacks sampled, and for how many seconds."""
    client = PulsarjobsClient(settings)
    tuning = Tuning(options.concurrency, 1, options.prefetch)
    system = next(s for s in pulsar_systems(client, tuning) if
                  s.name == ("pj_async" if options.job == "noop_async" else "pj_sync"))  # fmt: skip
    client.fresh_queue("profile")
    client.bulk(options.job, options.jobs)
    env = worker_env(settings, None, str(work))
    workers = Workers.start(system.worker_commands(options.processes), env, work / "worker.log")
    raw = work / "stacks.txt"
    try:
        # Start sampling at about 10% drained, like the drain figures, and stop at 90%.
        while client.pending() > 0.9 * options.jobs:
            workers.check_alive()
            time.sleep(0.02)
        spy = start_py_spy(sampled_pid(workers, options.processes), raw, options)
        started = time.perf_counter()
        figures = watch_drain(workers, client.pending, options.jobs)
        spy.send_signal(signal.SIGINT)
        seconds = time.perf_counter() - started
        spy.wait(60)
    finally:
        workers.stop()
        client.close()
    print(f"drained at {figures['jobs_per_s']:,.0f} jobs/s while sampled", file=sys.stderr)
    return read_stacks(raw), seconds


def sampled_pid(workers: Workers, processes: int) -> int:
    """The worker process itself, or under a supervisor the first of its worker processes
    (multiprocessing's spawned children, not its resource tracker)."""
    if processes == 1:
        return workers.processes[0].pid
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        children = [pid for pid in workers.pids() if b"spawn_main" in command_line(pid)]
        if len(children) >= processes:
            return min(children)
        workers.check_alive()
        time.sleep(0.1)
    raise SystemExit(f"the supervisor did not start {processes} worker processes in 60 s")


def command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def start_py_spy(pid: int, raw: Path, options: argparse.Namespace) -> subprocess.Popen[bytes]:
    executable = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [executable, "record", "--pid", str(pid), "--format", "raw", "--output", str(raw),
               "--rate", str(options.rate), "--threads"]  # fmt: skip
    if options.idle:
        command.append("--idle")
    elif not options.every_thread:
        command.append("--gil")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_stacks(raw: Path) -> Counter[tuple[str, ...]]:
    """Collapsed stacks, root first, with short file names and without line numbers."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in raw.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        names = tuple(_LINE.sub(")", _PATH.sub("(", frame)) for frame in frames.split(";"))
        stacks[names] += int(count)
    return stacks


def summary(stacks: Counter[tuple[str, ...]], top: int, ticks: float) -> str:
    threads: dict[str, Counter[tuple[str, ...]]] = {}
    for stack, count in stacks.items():
        threads.setdefault(thread_name(stack[0]), Counter())[stack[1:]] += count
    parts = [f"{stacks.total()} samples in about {ticks:.0f} ticks"]
    for thread, by_stack in sorted(threads.items(), key=lambda item: -item[1].total()):
        samples = by_stack.total()
        own: Counter[str] = Counter()
        anywhere: Counter[str] = Counter()
        for stack, count in by_stack.items():
            if stack:
                own[stack[-1]] += count
            for frame in set(stack):
                anywhere[frame] += count
        anywhere = Counter({f: n for f, n in anywhere.items() if n < 0.99 * samples})
        parts.append(f"\n== {thread}: busy {100 * samples / ticks:.0f}% ({samples} samples)")
        parts.append(ranking("own time", own, samples, top))
        parts.append(ranking("total time", anywhere, samples, top))
    return "\n".join(parts)


def thread_name(frame: str) -> str:
    """py-spy's thread frame, `process ... thread (0x...) "name"`: the name, else the frame."""
    quoted = re.search(r'"([^"]+)"', frame)
    return quoted.group(1) if quoted else frame


def ranking(title: str, counts: Counter[str], total: int, top: int) -> str:
    lines = [f"-- by {title}"]
    lines += [f"{100 * n / total:6.1f}%  {frame}" for frame, n in counts.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
