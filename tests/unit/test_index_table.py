"""The job index as the dashboard keeps it: an id's latest entry, found by its hash."""

from __future__ import annotations

import pytest

from pulsarjobs.operations import index_table
from pulsarjobs.operations.index_table import IndexTable
from pulsarjobs.transport.job_index import IndexEntry

HASHES = {"a": b"\x01" * 8, "b": b"\x02" * 8, "m": b"\x03" * 8, "ab": b"\x01" * 4 + b"\x02" * 4}


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> IndexTable:
    monkeypatch.setattr(index_table, "id_hash", lambda job_id: HASHES.get(job_id, b"\x09" * 8))
    kept = IndexTable(lambda: pytest.fail("no broker in this test"))
    kept._catch_up = lambda: 0  # type: ignore[method-assign]
    return kept


def test_an_ids_latest_entry_is_found_and_an_emptied_one_is_none(table: IndexTable) -> None:
    table._add("a", IndexEntry("emails", "jobs", (7, 3)).encode())
    table._add("b", IndexEntry("billing", "dead", (2**40 - 1, 2**40 - 1)).encode())
    table._add("a", IndexEntry("emails", "retry", (9, 0)).encode())  # retried since
    table._add("m", IndexEntry("emails", "groups", (4, 5)).encode())  # a grouped job's member
    assert table.get("m")[0] == IndexEntry("emails", "groups", (4, 5))
    assert table.get("a") == (IndexEntry("emails", "retry", (9, 0)), 0)
    assert table.get("b")[0] == IndexEntry("billing", "dead", (2**40 - 1, 2**40 - 1))
    table._add("b", b"")  # emptied: it settled for good
    assert table.get("b")[0] is None
    assert table.get("unknown")[0] is None


def test_a_hash_across_two_others_is_not_taken_for_an_entry(table: IndexTable) -> None:
    table._add("a", IndexEntry("emails", "jobs", (1, 1)).encode())
    table._add("b", IndexEntry("emails", "jobs", (2, 2)).encode())
    assert table.get("ab")[0] is None  # its bytes span a's end and b's start
    table._add("ab", IndexEntry("reports", "ordered", (3, 3)).encode())
    assert table.get("ab")[0] == IndexEntry("reports", "ordered", (3, 3))
