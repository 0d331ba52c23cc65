"""Searching a list of jobs by type or by argument text (the dashboard's list pages, `?q=`).

A search is a filter of the list's pages (browse.py): each page reads at most SCAN_PER_PAGE
messages and says how many it read of how many the topic holds, so a search that matches little
is answered page by page, never cut short in silence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pulsarjobs.operations.jsonable import jsonable
from pulsarjobs.wire.envelope import Envelope


@dataclass(frozen=True, slots=True)
class JobSearch:
    """Jobs whose type starts with `text`, or whose arguments hold it (as JSON), in any case."""

    text: str

    def matches(self, envelope: Envelope | None) -> bool:
        if envelope is None:
            return False
        needle = self.text.casefold()
        return envelope.type.casefold().startswith(needle) or needle in arguments_text(envelope)


def arguments_text(envelope: Envelope) -> str:
    """A job's arguments as a search reads them: JSON, folded to lower case."""
    both = [jsonable(list(envelope.args)), jsonable(dict(envelope.kwargs))]
    return json.dumps(both, ensure_ascii=False, default=str).casefold()
