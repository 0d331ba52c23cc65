"""Pulsar's schema registry: the envelope schema our producers and consumers declare, and the
schema each message was written with.

A producer on a newer (or older) envelope schema registers its version on the topic; its
messages name that version. Decoding needs the writer's schema, so the worker looks each
(topic, version) up once over the admin API and keeps it.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import _pulsar
import pulsar.schema
import structlog

from pulsarjobs.errors import PulsarJobsError
from pulsarjobs.logs import error_text
from pulsarjobs.settings import Settings
from pulsarjobs.transport.admin import Admin
from pulsarjobs.wire.envelope import SCHEMA_DEFINITION
from pulsarjobs.wire.result_schema import RESULT_SCHEMA

log = structlog.get_logger("pulsarjobs.schemas")

Key = tuple[str, int]
NOT_LOOKED_UP = "not looked up"  # what `known` gives for a version not asked yet


class WriterSchemas:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Each version looked up: its schema, or None where the registry could not say.
        self.known: dict[Key, str | None] = {}
        self._lock = threading.Lock()

    @staticmethod
    @functools.lru_cache(maxsize=1024)  # asked for every message; topics and versions are few
    def key(topic: str, raw_version: str | bytes) -> Key | None:
        """The registry key of a message; None for a message sent without a schema."""
        if not raw_version:
            return None
        data = raw_version.encode("latin-1") if isinstance(raw_version, str) else raw_version
        return topic, int.from_bytes(data, "big")

    def fetch(self, key: Key) -> str | None:
        """Look a version up (blocking); remembered, failures included, so it is asked once."""
        topic, version = key
        schema: str | None = None
        try:
            with Admin.of(self.settings) as admin:
                schema = admin.schema(topic, version)
        except PulsarJobsError as exc:
            log.warning("cannot read a writer schema; decoding with ours", topic=topic,
                        version=version, error=error_text(exc))  # fmt: skip
        with self._lock:
            self.known[key] = schema
        return schema


class _RegisteredAvroSchema(pulsar.schema.Schema):  # type: ignore[misc]
    """Declares one of our Avro schemas to Pulsar's registry while payloads stay bytes: the
    client sends and returns them untouched, and our codecs do the Avro."""

    def __init__(self, definition: dict[str, Any]) -> None:
        super().__init__(bytes, _pulsar.SchemaType.AVRO, definition, "AVRO")
        self._name = f"{definition['name']}Schema"

    def encode(self, obj: bytes) -> bytes:
        self._validate_object_type(obj)
        return obj

    def decode(self, data: bytes) -> bytes:
        return data

    def __str__(self) -> str:
        return self._name


@functools.cache
def pulsar_schema() -> pulsar.schema.Schema:
    """The schema to give Pulsar producers and consumers of job topics (one shared instance)."""
    return _RegisteredAvroSchema(SCHEMA_DEFINITION)


@functools.cache
def result_schema() -> pulsar.schema.Schema:
    """The schema of the results topic's producers (results.py)."""
    return _RegisteredAvroSchema(RESULT_SCHEMA)
