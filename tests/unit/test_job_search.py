"""A list's search by type or argument text (pulsarjobs/operations/job_search.py), and the job
index's entries as written and read (pulsarjobs/transport/job_index.py)."""

from __future__ import annotations

from pulsarjobs.operations.index_table import id_hash
from pulsarjobs.operations.job_search import JobSearch
from pulsarjobs.transport.job_index import IndexEntry
from pulsarjobs.wire.envelope import Envelope, new_id


def receipt(*args: object, **kwargs: object) -> Envelope:
    return Envelope(new_id(), "send_receipt", "emails", args=args, kwargs=kwargs)  # type: ignore[arg-type]


def test_a_search_matches_the_start_of_a_type_in_any_case() -> None:
    job = receipt("order-1")
    assert JobSearch("SEND_rec").matches(job)
    assert not JobSearch("receipt").matches(job)  # the start of the type, not any part of it


def test_a_search_matches_argument_text_anywhere_in_any_case() -> None:
    job = receipt("order-1042", address="Anna@Example.com", lines=[{"sku": "SKU-4411"}])
    assert JobSearch("anna@example").matches(job)
    assert JobSearch("sku-4411").matches(job)
    assert JobSearch("1042").matches(job)
    assert not JobSearch("order-2000").matches(job)
    assert not JobSearch("anything").matches(None)  # a message that is no job


def test_an_index_entry_reads_back_as_written_and_an_emptied_one_as_none() -> None:
    entry = IndexEntry("billing", "retry", (121, 7))
    assert IndexEntry.decode(entry.encode()) == entry
    assert IndexEntry.decode(b"") is None
    assert IndexEntry.decode(b"billing elsewhere 1:2") is None


def test_with_the_index_off_a_job_is_published_with_its_plain_acks_and_nothing_is_written() -> None:
    from types import SimpleNamespace

    from pulsarjobs.settings import Settings
    from pulsarjobs.transport.answers import Acks
    from pulsarjobs.transport.job_index import IndexedAck, JobIndex

    for on in (True, False):
        connection = SimpleNamespace(settings=Settings(job_index=on), in_memory=False)
        index = JobIndex(lambda connection=connection: connection)  # type: ignore[misc]
        group = Acks(1)
        acks = index.acks("job", "default", "persistent://public/pulsarjobs/default", group)
        assert isinstance(acks, IndexedAck) is on
        assert (acks is group) is not on


def test_an_app_closed_while_its_index_thread_is_being_started_waits_for_that_thread() -> None:
    """An enqueue's ack (on the client's thread) starts the index's thread; an App closed at
    that moment must join it once started, not fail on a thread not yet started."""
    import threading
    import time
    from types import SimpleNamespace

    from pulsarjobs.settings import Settings
    from pulsarjobs.transport import job_index
    from pulsarjobs.transport.job_index import JobIndex

    def no_producer(*_args: object, **_kwargs: object) -> None:
        raise ConnectionError("no broker here")

    client = SimpleNamespace(create_producer=no_producer)
    connection = SimpleNamespace(
        settings=Settings(), in_memory=False, client=client, keep_marks=lambda topic: None
    )
    index = JobIndex(lambda: connection)  # type: ignore[arg-type,return-value]
    starting, stopping = threading.Event(), threading.Event()

    class SaysStop(threading.Event):
        def set(self) -> None:
            stopping.set()
            super().set()

    class SlowToStart(threading.Thread):
        def start(self) -> None:
            starting.set()
            stopping.wait(0.5)  # close() begins in this gap (or, mended, waits for us)
            time.sleep(0.05)
            super().start()

    index._stop = SaysStop()
    failures: list[BaseException] = []

    def close() -> None:
        try:
            index.close()
        except BaseException as exc:
            failures.append(exc)

    original = job_index.threading.Thread
    job_index.threading.Thread = SlowToStart  # type: ignore[misc]
    try:
        noting = threading.Thread(target=index.note, args=(("job", "q", "t", None),))
        noting.start()
        assert starting.wait(5.0)
        closer = threading.Thread(target=close)
        closer.start()
        closer.join(5.0)
        noting.join(5.0)
    finally:
        job_index.threading.Thread = original  # type: ignore[misc]
    assert failures == []
    assert not closer.is_alive() and index._thread is None  # closed, the thread joined


def test_a_fair_lanes_entry_reads_back_and_is_kept_by_the_dashboards_table() -> None:
    from pulsarjobs.operations.index_table import IndexTable
    from pulsarjobs.settings import Settings
    from pulsarjobs.transport.job_index import where_on
    from pulsarjobs.transport.topics import topics_for

    settings = Settings()
    lane = topics_for(settings, "reports").lane(3)
    entry = IndexEntry("reports", where_on(settings, "reports", lane), (12, 34))
    assert entry.where == "fair-3"
    assert IndexEntry.decode(entry.encode()) == entry
    table = IndexTable(lambda: None)  # type: ignore[arg-type,return-value]
    table._add("job-1", entry.encode())
    table._add("job-2", IndexEntry("reports", "ordered", (5, 6)).encode())
    assert table._find(id_hash("job-1")) == entry
    assert table._find(id_hash("job-2")) == IndexEntry("reports", "ordered", (5, 6))


def test_an_app_used_on_the_broker_and_then_under_a_test_runner_writes_no_index_there() -> None:
    """The decision follows the app's connection: a TestRunner swaps in its in-memory one after
    the app may have enqueued for real (docs/flow-control.md does), and the index must then
    not try to write through it."""
    from types import SimpleNamespace

    from pulsarjobs.settings import Settings
    from pulsarjobs.transport.job_index import JobIndex

    real = SimpleNamespace(settings=Settings(), in_memory=False)
    in_memory = SimpleNamespace(settings=Settings(), in_memory=True)
    connections = [real]
    index = JobIndex(lambda: connections[-1])  # type: ignore[arg-type,return-value]
    assert index.writes()
    connections.append(in_memory)  # the TestRunner's
    assert not index.writes()
    connections.pop()  # and back
    assert index.writes()


def test_entries_noted_just_before_a_test_runner_took_over_wait_for_the_apps_connection() -> None:
    """docs/flow-control.md enqueues for real, then enters a TestRunner at once: the entries
    noted by the broker's acks must neither fail on the in-memory connection (a warning in the
    log) nor be lost once the app's own connection is back."""
    from types import SimpleNamespace

    from pulsarjobs.settings import Settings
    from pulsarjobs.transport.job_index import JobIndex

    sent: list[bytes] = []
    producer = SimpleNamespace(send_async=lambda value, callback, partition_key: sent.append(value))
    client = SimpleNamespace(create_producer=lambda *args, **kwargs: producer)
    real = SimpleNamespace(settings=Settings(), in_memory=False, made=lambda make: make(client),
                           keep_marks=lambda topic: None)  # fmt: skip
    in_memory = SimpleNamespace(settings=Settings(), in_memory=True)
    connections: list[object] = [in_memory]
    index = JobIndex(lambda: connections[-1])  # type: ignore[arg-type,return-value]
    stored = SimpleNamespace(ledger_id=lambda: 3, entry_id=lambda: 4)  # the broker's ack
    index._notes.append(("job-1", "default", "persistent://public/pulsarjobs/default", stored))
    index._send_noted()  # on the TestRunner's connection: nothing sent, nothing dropped
    assert sent == [] and len(index._notes) == 1
    connections[-1] = real
    index._send_noted()
    assert sent == [b"default jobs 3:4"]
