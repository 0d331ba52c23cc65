"""Actions on many jobs, run in a background thread while the page polls: replays and deletes
of dead letters, and run now, cancel and kill of scheduled or retrying jobs.

Each runs the same code as the command line (replay.py, bulk_jobs.py) with an Inspector of its
own, so a long one never holds up the dashboard's reads, and reports how many messages it has
read as it goes. One action per topic of a queue at a time: replay.py refuses a second one on
the dead letters anyway, and this says so before a thread starts.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from urllib.parse import quote

from pulsarjobs.clock import utc_now
from pulsarjobs.errors import PulsarJobsError
from pulsarjobs.operations import replay as moves
from pulsarjobs.operations.browse import Where
from pulsarjobs.operations.inspector import Inspector
from pulsarjobs.settings import Settings

Action = Literal["replay", "delete", "run-now", "cancel", "kill"]
DONE: dict[Action, str] = {
    "replay": "replayed",
    "delete": "deleted",
    "run-now": "run now",
    "cancel": "cancelled",
    "kill": "killed",
}
READING: dict[Where, str] = {  # what a task on each topic reads
    "dead": "dead letters",
    "jobs": "messages on the queue's topic",
    "retry": "messages on the retry topic",
}
TAB: dict[Where, str] = {"dead": "dead", "jobs": "scheduled", "retry": "retries"}  # lists it
KEEP = 50  # finished tasks remembered
Work = Callable[[Inspector, moves.Progress], moves.Moved]  # the action, told of its progress


class Busy(PulsarJobsError):
    """Another action on the same topic of the queue is running."""


@dataclass
class Task:
    id: str
    action: Action
    queue: str
    where: Where  # the topic of the queue it reads
    picks: str  # what the filter picks, in words
    total: int  # messages the topic held when the task began
    started_at: datetime = field(default_factory=utc_now)
    scanned: int = 0  # messages read so far
    state: Literal["running", "done", "failed"] = "running"
    result: moves.Moved | None = None
    error: str | None = None
    finished_at: datetime | None = None

    def advance(self, read: int) -> None:
        self.scanned += read  # only the task's own thread writes it

    @property
    def percent(self) -> int:
        return min(100, self.scanned * 100 // self.total) if self.total else 100

    @property
    def done(self) -> str:
        return DONE[self.action]

    @property
    def reading(self) -> str:
        return READING[self.where]

    @property
    def tab(self) -> str:
        """The tab of the page listing what it acts on."""
        return TAB[self.where]

    @property
    def listed_at(self) -> str:
        return f"/{self.tab}?queue={quote(self.queue)}"


class Tasks:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._tasks: OrderedDict[str, Task] = OrderedDict()
        self._lock = threading.Lock()

    def start(
        self, action: Action, queue: str, where: Where, picks: str, total: int, work: Work
    ) -> Task:
        with self._lock:
            running = [
                t
                for t in self._tasks.values()
                if (t.queue, t.where) == (queue, where) and t.state == "running"
            ]
            if running:
                raise Busy(
                    f"A {running[0].action} of the {running[0].reading} of {queue} is running; "
                    "wait for it to finish."
                )
            task = Task(uuid.uuid4().hex[:12], action, queue, where, picks, total)
            self._tasks[task.id] = task
            while len(self._tasks) > KEEP:
                self._tasks.popitem(last=False)
        thread = threading.Thread(
            target=self._run, args=(task, work), name=f"dashboard-{action}", daemon=True
        )
        thread.start()
        return task

    def get(self, task_id: str) -> Task | None:
        with self._lock:
            return self._tasks.get(task_id)

    def recent(self) -> list[Task]:
        with self._lock:
            return list(reversed(self._tasks.values()))

    def _run(self, task: Task, work: Work) -> None:
        try:
            with Inspector(self.settings) as inspector:
                task.result = work(inspector, task.advance)
            task.state = "done"
        except Exception as exc:  # shown on the task's page: it must not die unseen
            task.error = str(exc) if isinstance(exc, PulsarJobsError) else repr(exc)
            task.state = "failed"
        finally:
            task.finished_at = utc_now()
