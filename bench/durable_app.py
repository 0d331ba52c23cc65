"""The jobs of `bench.durable_cost`: a plain no-op, a durable job of one no-op step, and
durable jobs that time a step, sleep, or wait for a signal, noting when their code goes on.

Notes are lines `kind reference time_ns` appended with one `write` to a file per process in
BENCH_RECORD_DIR (as bench/record.py does), read back by `notes`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.record import RECORD_DIR
from pulsarjobs import App, Durable

app = App()

_fd: int | None = None
_owner = 0


def note(kind: bytes, reference: int) -> None:
    global _fd, _owner
    now = time.time_ns()
    if _fd is None or _owner != os.getpid():
        path = Path(os.environ[RECORD_DIR]) / f"durable-{os.getpid()}.txt"
        _fd, _owner = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), os.getpid()
    os.write(_fd, b"%s %d %d\n" % (kind, reference, now))


def notes(directory: Path, kind: str) -> list[tuple[int, int]]:
    """Every (reference, time_ns) noted of `kind` so far."""
    found = []
    for path in directory.glob("durable-*.txt"):
        for line in path.read_text().splitlines():
            noted, reference, at = line.split()
            if noted == kind:
                found.append((int(reference), int(at)))
    return found


def nothing() -> None:
    return None


@app.job
async def plain_noop(n: int) -> None:
    return None


@app.job(durable=True)
async def durable_noop(ctx: Durable, n: int) -> None:
    await ctx.step("noop", nothing)


@app.job(durable=True)
async def timed_step(ctx: Durable, n: int) -> None:
    """Notes when its no-op step began: the note's own time is when the step returned."""
    began = time.time_ns()
    await ctx.step("noop", nothing)
    note(b"step", began)


@app.job(durable=True)
async def sleeper(ctx: Durable, n: int, delay_ms: int) -> None:
    await ctx.sleep(delay_ms / 1000)
    note(b"woke", n)


@app.job(durable=True)
async def waiter(ctx: Durable, n: int, key: str, timeout_s: float) -> None:
    await ctx.wait_for(key, timeout=timeout_s)
    note(b"signalled", n)
