"""The crash ledger of a group of worker processes: which jobs were running when one died.

A job that kills its own process (`os._exit`, a crash in a C extension, the OOM killer) is never
settled, and the broker does not count a delivery to a consumer that died, so its dead-letter
policy never ends such a job: processes would die and restart for as long as it stays queued.
The supervisor of `--processes N` therefore keeps a ledger in a directory of its own:

- each child maps a file of fixed-size slots, one per job it can run at once, and writes the id
  of a job into a free slot when the job starts and clears it when the run ends — a memory copy,
  no system call; the kernel keeps the pages of a process that was killed;
- when a child dies, the supervisor reads its slots and counts a crash for each job in them, in
  the file `crashes` of the same directory (rewritten whole and renamed into place). The broker
  hands a dead child's jobs to a sibling within milliseconds, before that sibling can have read
  the new counts, so a sibling may run them at once, beside the same neighbours, and die too: a
  death within RECOUNT_AFTER_S of a job's last counted one is that same death passed on, and is
  not counted again for it (else its innocent neighbours would be counted twice as well);
- children reload that file when it changes. Before a job with crashes runs, a child:
  dead-letters it once it was running in CRASHES_BEFORE_DEAD process deaths, with the reason
  "killed its worker process N times"; otherwise, once after each crash, puts it back to run a
  few seconds later (outcome `deferred`), so that it next runs beside other jobs — a job that
  only shared a process with the culprit does not share its fate.

A single worker process has no supervisor and keeps no ledger.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from pulsarjobs.logs import error_text

log = structlog.get_logger("pulsarjobs.crashes")

# Deaths of its process a job may be running in before it is dead-lettered. Not the job's
# max_attempts: a death is no sure sign of guilt (every job running in that process counts
# one), and each one re-runs every job the process held, so the allowance is small and the same
# for every job. Deferring after each crash keeps an innocent job from reaching it.
CRASHES_BEFORE_DEAD = 3
DEFER_SECONDS = (1.0, 5.0)  # a job that was running in a dead process runs again after this
SLOT_BYTES = 256  # a length byte and up to 255 bytes of job id
LONGEST_ID = 63  # characters (4 bytes at most each); longer ids are kept as a digest
RELOAD_INTERVAL_S = 0.1  # how often a child looks for new counts
# A job is put back for at least DEFER_SECONDS[0] after a death its worker knew of, so a second
# death sooner than that was a run by a process that did not know of the first yet.
RECOUNT_AFTER_S = DEFER_SECONDS[0]
FORGET_AFTER_S = 24 * 3600.0  # counts of jobs that have not crashed for this long are dropped
COUNTS_FILE = "crashes"

Crashes = tuple[int, float]  # how many process deaths, the time (Unix) of the last one


def ledger_key(job_id: str) -> str:
    """The id as the ledger keeps it: itself, or a digest of an id too long for a slot."""
    if len(job_id) <= LONGEST_ID:
        return job_id
    return "#" + hashlib.blake2b(job_id.encode(), digest_size=16).hexdigest()


def slots_path(directory: str, pid: int) -> Path:
    return Path(directory) / f"running-{pid}"


class CrashGuard:
    """A child's side: its running jobs written to its slots, and the counts read back."""

    def __init__(self, directory: str, slots: int) -> None:
        self.directory = directory
        self.counts: dict[str, Crashes] = {}  # replaced whole on reload: readers need no lock
        self._free = list(range(slots))  # pop and append are atomic: runners need no lock
        self._path = slots_path(directory, os.getpid())
        self._file = self._path.open("w+b")
        self._file.truncate(slots * SLOT_BYTES)
        self._slots = mmap.mmap(self._file.fileno(), slots * SLOT_BYTES)
        self._seen: tuple[int, int] | None = None  # (inode, mtime) of the counts loaded
        self._stopping = threading.Event()
        self._reloader = threading.Thread(
            target=self._reload_forever, name="pulsarjobs-crashes", daemon=True
        )

    def start(self) -> None:
        self._reload()  # before the first job: a restarted process knows why it restarted
        self._reloader.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._reloader.is_alive():
            self._reloader.join()
        self._slots.close()
        self._file.close()
        self._path.unlink(missing_ok=True)

    # -- the per-job path --------------------------------------------------------------------

    def of(self, job_id: str) -> Crashes | None:
        """The crashes of a job, if it ever was running in a process that died."""
        return self.counts.get(job_id if len(job_id) <= LONGEST_ID else ledger_key(job_id))

    def started(self, job_id: str) -> int:
        """Write a starting job's id into a free slot; the slot (-1: none free, not written)."""
        try:
            slot = self._free.pop()
        except IndexError:
            return -1
        data = ledger_key(job_id).encode()
        offset = slot * SLOT_BYTES
        self._slots[offset + 1 : offset + 1 + len(data)] = data
        self._slots[offset] = len(data)  # last: a slot is whole once its length is there
        return slot

    def ended(self, slot: int) -> None:
        if slot >= 0:
            self._slots[slot * SLOT_BYTES] = 0
            self._free.append(slot)

    # -- counts ------------------------------------------------------------------------------

    def _reload_forever(self) -> None:
        while not self._stopping.wait(RELOAD_INTERVAL_S):
            self._reload()

    def _reload(self) -> None:
        path = Path(self.directory) / COUNTS_FILE
        try:
            status = path.stat()
            seen = (status.st_ino, status.st_mtime_ns)
            if seen != self._seen:
                self.counts = read_counts(path)
                self._seen = seen
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("cannot read the crash ledger", path=str(path), error=error_text(exc))


class CrashLedger:
    """The supervisor's side: the directory, and a crash counted for what a dead child ran."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.directory = tempfile.mkdtemp(prefix="pulsarjobs-crashes-")
        self._counts: dict[str, Crashes] = {}
        self._clock = clock

    def process_died(self, pid: int) -> list[str]:
        """Count a crash for each job the process was running, unless it was counted less than
        RECOUNT_AFTER_S ago; the ids (as the ledger keeps them) of the jobs it was running."""
        path = slots_path(self.directory, pid)
        try:
            running = read_slots(path.read_bytes())
        except FileNotFoundError:  # it died before it could run anything
            return []
        path.unlink(missing_ok=True)
        now = self._clock()
        counted = False
        for key in running:
            count, last_death = self._counts.get(key, (0, 0.0))
            if now - last_death >= RECOUNT_AFTER_S:
                self._counts[key] = (count + 1, now)
                counted = True
        if counted:
            self._write(now)
        return running

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def _write(self, now: float) -> None:
        self._counts = {
            key: crashes
            for key, crashes in self._counts.items()
            if now - crashes[1] < FORGET_AFTER_S
        }
        path = Path(self.directory) / COUNTS_FILE
        fresh = path.with_suffix(".new")
        fresh.write_text(json.dumps(self._counts))
        os.replace(fresh, path)  # readers see the old counts or the new ones, whole


def read_slots(data: bytes) -> list[str]:
    running = []
    for offset in range(0, len(data) - SLOT_BYTES + 1, SLOT_BYTES):
        length = data[offset]
        if length:
            with contextlib.suppress(UnicodeDecodeError):  # torn by the death: not a whole id
                running.append(data[offset + 1 : offset + 1 + length].decode())
    return running


def read_counts(path: Path) -> dict[str, Crashes]:
    loaded = json.loads(path.read_text())
    return {str(key): (int(count), float(at)) for key, (count, at) in loaded.items()}
