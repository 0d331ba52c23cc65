"""A list's search by type or argument text (pulsarjobs/operations/job_search.py), and the job
index's entries as written and read (pulsarjobs/transport/job_index.py)."""

from __future__ import annotations

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
    from pulsarjobs.transport.connection import Acks
    from pulsarjobs.transport.job_index import IndexedAck, JobIndex

    for on in (True, False):
        connection = SimpleNamespace(settings=Settings(job_index=on), in_memory=False)
        index = JobIndex(lambda connection=connection: connection)  # type: ignore[misc]
        group = Acks(1)
        acks = index.acks("job", "default", "persistent://public/pulsarjobs/default", group)
        assert isinstance(acks, IndexedAck) is on
        assert (acks is group) is not on
