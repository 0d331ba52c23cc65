"""Envelopes stored before `extras` existed, when its fields sat at the top level of the
envelope: workers read them whole, so that jobs waiting in a topic across an upgrade keep their
schedule, their error, their keys and their chain. `flat_envelopes/` holds that schema and the
test vectors as it wrote them."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest

from pulsarjobs.wire.envelope import SCHEMA_DEFINITION, Chain, Envelope, JobError, decode, encode

FLAT = Path(__file__).resolve().parent / "flat_envelopes"
FLAT_SCHEMA_TEXT = (FLAT / "job_envelope.avsc").read_text()
FLAT_SCHEMA = fastavro.parse_schema(json.loads(FLAT_SCHEMA_TEXT))
NESTED_SCHEMA = fastavro.parse_schema(SCHEMA_DEFINITION)
VECTORS = FLAT.parents[2] / "schemas" / "vectors"
WHEN = datetime(2026, 3, 1, 12, tzinfo=UTC)


def flat_record(record: dict[str, Any]) -> dict[str, Any]:
    """A record of today's schema as the flat schema held it: extras' fields at the top."""
    extras = record.pop("extras") or {}
    chain = extras.get("chain")
    if chain is not None:
        chain["next"] = [flat_record(link) for link in chain["next"]]
    defaults = {"snoozes": 0}
    for field in json.loads(FLAT_SCHEMA_TEXT)["fields"]:
        if field["name"] not in record:
            record[field["name"]] = extras.get(field["name"], defaults.get(field["name"]))
    return record


def written_flat(env: Envelope) -> bytes:
    record = fastavro.schemaless_reader(io.BytesIO(encode(env)), NESTED_SCHEMA)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, FLAT_SCHEMA, flat_record(record))  # type: ignore[arg-type]
    return out.getvalue()


@pytest.mark.parametrize("name", ["send_email", "retried_report"])
def test_a_stored_flat_vector_decodes_as_todays_vector(name: str) -> None:
    stored = (FLAT / f"{name}.avro").read_bytes()
    today = (VECTORS / f"{name}.avro").read_bytes()
    envelope = decode(stored, writer_schema=FLAT_SCHEMA_TEXT)
    assert envelope == decode(today)
    assert encode(envelope) == today


def test_a_flat_chain_keeps_every_link_and_its_options() -> None:
    second = Envelope(id="b", type="pay", queue="default", created_at=WHEN, unique_key="u-b",
                      timeout=30.0, keep_result=60.0)  # fmt: skip
    error = JobError("ValueError", "no", "Traceback ...", WHEN, "host:1")
    env = Envelope(
        id="a", type="reserve", queue="default", created_at=WHEN, attempt=2, run_at=WHEN,
        last_error=error, order_key="o", limit_key="l", snoozes=1, batch_id="batch",
        chain=Chain("c", 1, 2, True, (second,)),
    )  # fmt: skip
    assert decode(written_flat(env), writer_schema=FLAT_SCHEMA_TEXT) == env


def test_without_the_writer_schema_a_flat_envelope_is_refused_not_misread() -> None:
    plain = Envelope(id="a", type="reserve", queue="default", created_at=WHEN, run_at=WHEN)
    with pytest.raises(Exception, match="not a job envelope"):
        decode(written_flat(plain))
