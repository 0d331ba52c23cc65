"""The schema of a job result (schemas/job_result.avsc) with the envelope's types it uses
written in: what the schema registry holds for the results topic, and what results are coded by."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final

import fastavro

from pulsarjobs.wire.envelope import SCHEMA_DEFINITION, schema_text


def _records(node: Any) -> Iterator[dict[str, Any]]:
    """Every record defined in a schema, by a walk of its JSON."""
    if isinstance(node, dict):
        if node.get("type") == "record":
            yield node
        for value in node.values():
            yield from _records(value)
    elif isinstance(node, list):
        for item in node:
            yield from _records(item)


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    """`node` with the first use of each name in `definitions` replaced by its definition."""
    if isinstance(node, str) and node in definitions:
        return definitions.pop(node)
    if isinstance(node, dict):
        return {key: _inline(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    return node


_OWN = json.loads(schema_text("job_result.avsc"))
_BORROWED = {
    r["name"]: r for r in _records(SCHEMA_DEFINITION) if r["name"] in ("Value", "JobError")
}
RESULT_SCHEMA: Final[dict[str, Any]] = _inline(_OWN, _BORROWED)
"""The result's schema with the envelope's types it uses written in: what the registry holds."""
PARSED_RESULT_SCHEMA: Final = fastavro.parse_schema(RESULT_SCHEMA)
