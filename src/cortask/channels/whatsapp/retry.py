"""How long to wait before trying again, and when to stop: pure, the caller sleeps.

Used for a journal that cannot be written now (retried until it can: a message must not be lost)
and for a reply whose sending keeps failing (retried a few times, then marked failed).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float = 0.5  # the wait after the first failure; doubles after each further one
    max_seconds: float = 30.0  # never longer than this between two attempts
    attempts: int | None = None  # give up after this many failed attempts; None: never

    def __post_init__(self) -> None:
        if self.base_seconds < 0 or self.max_seconds < self.base_seconds:
            raise ValueError("a retry policy needs 0 <= base_seconds <= max_seconds")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError("a retry policy gives up after at least one attempt (or never: None)")

    def delay(self, failures: int) -> float:
        """The wait after `failures` failed attempts in a row (1 for the first failure)."""
        return min(self.max_seconds, self.base_seconds * 2.0 ** max(0, failures - 1))

    def exhausted(self, failures: int) -> bool:
        """True once `failures` failed attempts mean: stop trying."""
        return self.attempts is not None and failures >= self.attempts
