"""`with` for the objects that hold connections: leaving the block closes them."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closing:
    """Subclasses define `close`; `with Thing(...) as thing:` then closes it on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
