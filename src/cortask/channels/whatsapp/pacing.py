"""Sending like a person: a global token bucket with jitter.

A reply to one message goes out at once; many replies at once (a backlog after a restart, a
contact writing fast) are spread out, at most `burst` together and then `rate` per second with a
random extra pause, never a burst of hundreds (WhatsApp restricts accounts that send like that).
Pure: the caller passes the time and sleeps for the returned delay.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["PacingPolicy", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class PacingPolicy:
    rate_per_second: float = 1.0  # sustained sends per second once the burst is used up
    burst: int = 5  # sends allowed back to back
    jitter_seconds: float = 0.5  # up to this much extra when a send has to wait

    def __post_init__(self) -> None:
        if self.rate_per_second <= 0 or self.burst < 1 or self.jitter_seconds < 0:
            raise ValueError("pacing needs a positive rate, a burst of at least 1 and a jitter of 0 or more")


class TokenBucket:
    def __init__(self, policy: PacingPolicy, random: Callable[[], float] = _random.random) -> None:
        self._policy = policy
        self._random = random
        self._tokens = float(policy.burst)
        self._at: float | None = None

    def reserve(self, now: float) -> float:
        """Take one send's token; returns how long to wait before sending (0 when none)."""
        p = self._policy
        if self._at is not None:
            self._tokens = min(float(p.burst), self._tokens + (now - self._at) * p.rate_per_second)
        self._at = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        # in debt: this send waits until its token has grown back, plus a person's hesitation
        return -self._tokens / p.rate_per_second + self._random() * p.jitter_seconds

    def refund(self) -> None:
        """Give back the token of a send that did not go out (it failed, or was not connected)."""
        self._tokens = min(float(self._policy.burst), self._tokens + 1.0)
