"""Replays and deletes of dead letters, run in a background thread while the page polls.

Each runs the same code as `pulsarjobs dlq replay` / `purge` (replay.py) with an Inspector of its
own, so a long one never holds up the dashboard's reads, and reports how many dead letters it
has read as it goes. One action per queue at a time: replay.py refuses a second one anyway, and
this says so before a thread starts.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pulsarjobs.clock import utc_now
from pulsarjobs.errors import PulsarJobsError
from pulsarjobs.operations import replay as moves
from pulsarjobs.operations.dead_letters import DeadLetterFilter
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.settings import Settings

Action = Literal["replay", "delete"]
KEEP = 50  # finished tasks remembered


class Busy(PulsarJobsError):
    """Another action on the same queue's dead letters is running."""


@dataclass
class Task:
    id: str
    action: Action
    queue: str
    picks: str  # what the filter picks, in words
    total: int  # dead letters the queue held when the task began
    started_at: datetime = field(default_factory=utc_now)
    scanned: int = 0  # dead letters read so far
    state: Literal["running", "done", "failed"] = "running"
    result: moves.Moved | None = None
    error: str | None = None
    finished_at: datetime | None = None

    def advance(self, read: int) -> None:
        self.scanned += read  # only the task's own thread writes it

    @property
    def percent(self) -> int:
        return min(100, self.scanned * 100 // self.total) if self.total else 100


class Tasks:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tasks: OrderedDict[str, Task] = OrderedDict()
        self._lock = threading.Lock()

    def start(
        self, action: Action, queue: str, matching: DeadLetterFilter, picks: str, total: int
    ) -> Task:
        with self._lock:
            running = [t for t in self._tasks.values() if t.queue == queue and t.state == "running"]
            if running:
                raise Busy(
                    f"A {running[0].action} of the dead letters of {queue} is running; "
                    "wait for it to finish."
                )
            task = Task(uuid.uuid4().hex[:12], action, queue, picks, total)
            self._tasks[task.id] = task
            while len(self._tasks) > KEEP:
                self._tasks.popitem(last=False)
        thread = threading.Thread(
            target=self._run, args=(task, matching), name=f"dashboard-{action}", daemon=True
        )
        thread.start()
        return task

    def get(self, task_id: str) -> Task | None:
        with self._lock:
            return self._tasks.get(task_id)

    def recent(self) -> list[Task]:
        with self._lock:
            return list(reversed(self._tasks.values()))

    def _run(self, task: Task, matching: DeadLetterFilter) -> None:
        try:
            with Inspector(self.settings) as inspector:
                if task.action == "replay":
                    task.result = moves.replay(
                        inspector, task.queue, matching, progress=task.advance
                    )
                else:
                    task.result = moves.purge(
                        inspector, task.queue, matching, progress=task.advance
                    )
            task.state = "done"
        except Exception as exc:  # shown on the task's page: it must not die unseen
            task.error = str(exc) if isinstance(exc, PulsarJobsError) else repr(exc)
            task.state = "failed"
        finally:
            task.finished_at = utc_now()
