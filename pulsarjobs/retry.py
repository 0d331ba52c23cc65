"""Exponential backoff with jitter for failed jobs."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times a job may run and how long to wait after each failed run.

    After run ``n`` fails the job waits ``min(max_delay, initial_delay * multiplier**(n-1))``
    seconds, scaled by a uniform random factor in ``[1 - jitter, 1 + jitter]`` so that jobs
    failing together do not all come back at the same instant.
    """

    max_attempts: int = 25  # total runs, the first included; 1 = never retried
    initial_delay: float = 1.0  # seconds before the second run
    max_delay: float = 3600.0  # cap of the delay before jitter, seconds
    multiplier: float = 2.0  # growth of the delay per failed run
    jitter: float = 0.2  # +/- fraction of the delay, drawn uniformly

    def __post_init__(self) -> None:
        # Delays must be finite: they travel as milliseconds in an Avro long.
        _check(self.max_attempts >= 1, "max_attempts", self.max_attempts, "an integer >= 1")
        _check(
            _finite_min(self.initial_delay, 0), "initial_delay", self.initial_delay, "finite, >= 0"
        )
        _check(_finite_min(self.max_delay, 0), "max_delay", self.max_delay, "finite, >= 0")
        _check(_finite_min(self.multiplier, 1), "multiplier", self.multiplier, "finite, >= 1")
        _check(0 <= self.jitter <= 1, "jitter", self.jitter, "between 0 and 1")

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before the next run after run number ``attempt`` (1-based) failed.

        ``rand`` returns a float in [0, 1); pass a fixed one for deterministic delays.
        """
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt!r}")
        jittered = self._backoff(attempt) * (1 + self.jitter * (2 * rand() - 1))
        return max(0.0, jittered)

    def exhausted(self, attempt: int) -> bool:
        """True when run number ``attempt`` was the last one allowed."""
        return attempt >= self.max_attempts

    def _backoff(self, attempt: int) -> float:
        if self.initial_delay == 0:
            return 0.0
        try:
            # float(): an int multiplier would build a huge exact power instead of overflowing
            grown = self.initial_delay * float(self.multiplier) ** (attempt - 1)
        except OverflowError:  # the power left the float range: far past any finite cap
            return self.max_delay
        return min(self.max_delay, grown)


def _finite_min(value: float, minimum: float) -> bool:
    return math.isfinite(value) and value >= minimum


def _check(ok: bool, name: str, value: object, requirement: str) -> None:
    if not ok:
        raise ValueError(f"RetryPolicy.{name} must be {requirement}, got {value!r}")


NO_RETRY = RetryPolicy(max_attempts=1)
