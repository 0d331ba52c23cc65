"""Values as JSON: what `--json` prints and the dashboard's API answers, one way."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any


def jsonable(value: Any) -> Any:
    """Dataclasses, times and bytes as JSON values: bytes in base64, durations in seconds."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return {field.name: jsonable(getattr(value, field.name)) for field in fields}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value
