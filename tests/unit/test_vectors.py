"""The shared test vectors in schemas/vectors: each `.avro` file is the message payload of the
envelope its `.json` file holds in Avro's JSON encoding (a union value is `{"branch": value}`).
The Go example checks the same files (examples/go)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from pulsarjobs.wire.envelope import decode, encode

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
VECTORS = sorted((SCHEMAS / "vectors").glob("*.json"))
SCHEMA = json.loads((SCHEMAS / "job_envelope.avsc").read_text())
PARSED = fastavro.parse_schema(SCHEMA)


def branch_name(schema: Any, namespace: str) -> str:
    if isinstance(schema, str):
        return schema if "." in schema or schema in PRIMITIVES else f"{namespace}.{schema}"
    if schema["type"] == "record":
        return f"{schema.get('namespace', namespace)}.{schema['name']}"
    return str(schema["type"])


PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def from_avro_json(value: Any, schema: Any, named: dict[str, Any], namespace: str) -> Any:
    """A datum fastavro writes, from its Avro JSON encoding."""
    if isinstance(schema, str) and schema not in PRIMITIVES:
        return from_avro_json(value, named[branch_name(schema, namespace)], named, namespace)
    if isinstance(schema, list):
        if value is None:
            return None
        [(branch, inner)] = value.items()
        [chosen] = [s for s in schema if branch_name(s, namespace) == branch]
        return from_avro_json(inner, chosen, named, namespace)
    kind = schema if isinstance(schema, str) else schema["type"]
    if kind == "record":
        namespace = schema.get("namespace", namespace)
        named[branch_name(schema, namespace)] = schema
        return {
            field["name"]: from_avro_json(value[field["name"]], field["type"], named, namespace)
            for field in schema["fields"]
        }
    if kind == "array":
        return [from_avro_json(item, schema["items"], named, namespace) for item in value]
    if kind == "map":
        return {k: from_avro_json(v, schema["values"], named, namespace) for k, v in value.items()}
    if kind == "bytes":
        return value.encode("latin-1")  # Avro JSON: one code point per byte
    return value


def write(datum: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, PARSED, datum)
    return out.getvalue()


def test_there_are_vectors() -> None:
    assert len(VECTORS) >= 2


@pytest.mark.parametrize("vector", VECTORS, ids=lambda path: path.stem)
def test_the_bytes_are_the_avro_encoding_of_the_json(vector: Path) -> None:
    datum = from_avro_json(json.loads(vector.read_text()), SCHEMA, {}, "")
    assert write(datum) == vector.with_suffix(".avro").read_bytes()


@pytest.mark.parametrize("vector", VECTORS, ids=lambda path: path.stem)
def test_pulsarjobs_decodes_the_bytes_and_encodes_them_back(vector: Path) -> None:
    payload = vector.with_suffix(".avro").read_bytes()
    envelope = decode(payload)
    expected = json.loads(vector.read_text())
    assert (envelope.id, envelope.type, envelope.attempt) == (
        expected["id"], expected["type"], expected["attempt"],
    )  # fmt: skip
    assert encode(envelope) == payload
