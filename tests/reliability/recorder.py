"""The checker's durable record: every job whose enqueue returned, and every run that ended.

Each process appends JSON lines to a file of its own in one directory (no lock between
processes), and fsyncs each write before it returns: a record written is a record kept, even
when the process is killed the next instant. Producers record after `enqueue` returned;
handlers record at the end of a run, so a run that a kill cut short leaves nothing, and a job
recorded twice really ran twice. A scenario may add facts of its own (`event`: a durable
job's step that ran, a sleep that ended), which `read_events` reads back.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

DIRECTORY_VARIABLE = "PULSARJOBS_RELIABILITY_DIR"  # where worker processes find the record


@dataclass(frozen=True, slots=True)
class RunRecord:
    job_id: str
    attempt: int
    pid: int
    started: float  # Unix time the run started
    run_at: float | None  # when it was due, if it was scheduled


class Recorder:
    """One process's appends to the record in `directory`."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._fd: int | None = None
        self._pid = 0

    @classmethod
    def from_env(cls) -> Recorder:
        return cls(os.environ[DIRECTORY_VARIABLE])

    def enqueued(self, job_ids: list[str]) -> None:
        """Jobs whose enqueue returned: they must not get lost."""
        self._append("".join(json.dumps({"enqueued": job_id}) + "\n" for job_id in job_ids))

    def ran(self, job_id: str, attempt: int, started: float, run_at: datetime | None) -> None:
        due = run_at.timestamp() if run_at is not None else None
        line = {"ran": job_id, "attempt": attempt, "pid": os.getpid(), "started": started,
                "run_at": due}  # fmt: skip
        self._append(json.dumps(line) + "\n")

    def event(self, kind: str, **fields: object) -> None:
        """A fact of the scenario's own, as one line; `read_events` gives it back."""
        self._append(json.dumps({"event": kind, **fields}) + "\n")

    def _append(self, text: str) -> None:
        if self._fd is None or self._pid != os.getpid():  # opened anew in a forked child
            self._pid = os.getpid()
            path = self.directory / f"{self._pid}-{time.monotonic_ns()}.jsonl"
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, text.encode())  # one write per record: runner threads do not mix
        os.fdatasync(self._fd)


def read_record(directory: str | Path) -> tuple[list[str], list[RunRecord]]:
    """Every job id enqueued and every run, from all processes' files."""
    enqueued: list[str] = []
    runs: list[RunRecord] = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if not line.endswith("}"):
                continue  # a write cut by a kill: the run did not end, as far as we know
            item = json.loads(line)
            if "event" in item:
                continue
            if "enqueued" in item:
                enqueued.append(item["enqueued"])
            else:
                runs.append(
                    RunRecord(
                        item["ran"], item["attempt"], item["pid"], item["started"], item["run_at"]
                    )
                )
    return enqueued, runs


def read_events(directory: str | Path, kind: str) -> list[dict[str, Any]]:
    """The facts of one kind that processes recorded with `Recorder.event`."""
    events = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.endswith("}") and (item := json.loads(line)).get("event") == kind:
                events.append(item)
    return events
