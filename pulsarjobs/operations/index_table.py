"""The job index as a long-lived process keeps it (the dashboard): read whole once, then only
what was written since, so that finding a job by its id is a look-up, not a read of every entry
(job_lookup.py reads it whole for a one-off look, as `pulsarjobs jobs show` does).

Compact, because the index holds an entry per job stored (1.3 million with a million waiting):
for each entry read, 8 bytes of a BLAKE2b hash of its job id in one bytearray, searched from
its end at C speed for an id's latest entry, and two 64-bit words: its message's ledger, and
its message's entry with its place (an index into the (queue, topic) pairs seen). That is
24 bytes an entry, 31 MB for 1.3 million. Entries are appended as read (an id's later entry
supersedes its earlier one); once the entries kept are more than twice those of the last whole
read, the index is read whole again (the broker compacts it meanwhile), so that memory follows
the index's size, not its history.

`start` reads it whole at once, on a thread of its own (the dashboard starting), so that the first
look finds it read: a look asked meanwhile waits for that read (one lock), never makes its own.

A hash names a job without proving it: two of ten million ids share one with a chance of about
one in 370,000. The finder checks the message it finds against the id (job_lookup.py).
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Callable
from hashlib import blake2b

import pulsar
import structlog

from pulsarjobs.errors import PulsarJobsError
from pulsarjobs.transport.connection import Connection, client_errors
from pulsarjobs.transport.job_index import IndexEntry
from pulsarjobs.transport.topics import job_index_topic

READ_TIMEOUT_MS = 5_000
HASH_BYTES = 8
REREAD_AT_LEAST = 100_000  # entries kept before a whole read is worth its cost
EMPTIED = 1 << 63  # the entry was emptied: its job settled for good
_ENTRY_BITS = 40  # then the place's index, in the bits left below EMPTIED

log = structlog.get_logger("pulsarjobs.index_table")


def id_hash(job_id: str) -> bytes:
    return blake2b(job_id.encode(), digest_size=HASH_BYTES).digest()


class IndexTable:
    """The index's entries as this process last read them: `get(job_id)`."""

    def __init__(self, connection: Callable[[], Connection]) -> None:
        self._connection = connection
        self._lock = threading.Lock()  # one catch-up at a time; page requests run on threads
        self._reader: pulsar.Reader | None = None
        self._warming: threading.Thread | None = None
        self._closing = threading.Event()  # stops a whole read under way
        self.whole_reads = 0  # reads of the index whole, done to their end
        self._clear()

    def start(self, topic_exists: Callable[[], bool]) -> None:
        """Read the index whole now, on a thread, if the topic exists (a reader would create
        it). Failing (no broker yet), it says so, and the first look reads it instead."""
        self._warming = threading.Thread(
            target=self._warm, args=(topic_exists,), name="pulsarjobs-index-warm", daemon=True
        )
        self._warming.start()

    def get(self, job_id: str) -> tuple[IndexEntry | None, int]:
        """The job's latest entry (None: none, or emptied), and how many entries this look read
        (what was written since the last)."""
        with self._lock:
            read = self._catch_up()
            return self._find(id_hash(job_id)), read

    def close(self) -> None:
        self._closing.set()
        if self._warming is not None:
            self._warming.join()
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    # -- inside ------------------------------------------------------------------------------

    def _warm(self, topic_exists: Callable[[], bool]) -> None:
        try:
            with self._lock:
                if not self._closing.is_set() and topic_exists():
                    self._catch_up()
        except PulsarJobsError as exc:
            log.warning("job index not read at start; the first lookup reads it", error=str(exc))

    def _clear(self) -> None:
        self._hashes = bytearray()
        self._ledgers = array("q")
        self._words = array("Q")  # entry | where << 40 | queue << 42 | EMPTIED
        self._places: list[tuple[str, str]] = []  # (queue, where), as entries name them
        self._place_numbers: dict[tuple[str, str], int] = {}
        self._whole = 0  # entries the last whole read kept

    def _catch_up(self) -> int:
        connection = self._connection()
        topic = job_index_topic(connection.settings)
        if self._reader is not None and len(self._words) > max(2 * self._whole, REREAD_AT_LEAST):
            self._reader.close()  # read whole again: what compaction dropped goes
            self._reader = None
        read = 0
        with client_errors(connection.settings.service_url, f"reading {topic}"):
            if self._reader is None:
                self._clear()
                self._reader = connection.client.create_reader(
                    topic, pulsar.MessageId.earliest, is_read_compacted=True
                )
                whole = True
            else:
                whole = False
            while not self._closing.is_set() and self._reader.has_message_available():
                message = self._reader.read_next(timeout_millis=READ_TIMEOUT_MS)
                self._add(message.partition_key(), message.data())
                read += 1
        if whole and not self._closing.is_set():
            self._whole = len(self._words)
            self.whole_reads += 1
        return read

    def _add(self, job_id: str, data: bytes) -> None:
        entry = IndexEntry.decode(data) if data else None
        if entry is None:
            ledger, word = 0, EMPTIED
        else:
            place = (entry.queue, entry.where)
            number = self._place_numbers.get(place)
            if number is None:
                number = self._place_numbers[place] = len(self._places)
                self._places.append(place)
            ledger, entry_id = entry.position
            word = entry_id | number << _ENTRY_BITS
        self._hashes += id_hash(job_id)
        self._ledgers.append(ledger)
        self._words.append(word)

    def _find(self, hashed: bytes) -> IndexEntry | None:
        end = len(self._hashes)
        while (at := self._hashes.rfind(hashed, 0, end)) >= 0:
            if at % HASH_BYTES == 0:  # a hash's own bytes, not the end of one and start of next
                word = self._words[at // HASH_BYTES]
                if word & EMPTIED:
                    return None
                entry_id = word & ((1 << _ENTRY_BITS) - 1)
                queue, where = self._places[word >> _ENTRY_BITS]
                return IndexEntry(queue, where, (self._ledgers[at // HASH_BYTES], entry_id))
            end = at + HASH_BYTES - 1
        return None
