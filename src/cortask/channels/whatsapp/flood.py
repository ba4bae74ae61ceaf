"""Flood control: how many of one sender's messages may reach the agent.

A contact (or, when the channel is open to everyone, any stranger) who writes hundreds of
messages must not make the agent run hundreds of times, nor make other chats wait. Two sliding
windows per sender: at most `per_minute` messages in any 60 s, and, for senders let in only
because the channel is open to everyone, at most `open_per_hour` in any hour. Messages over the
limit are recorded and left unanswered; the sender gets nothing. The refusal is reported once
per flood (`Refused.first`), not once per message.

Pure: the caller passes the time (monotonic seconds), so tests drive it with a fake clock.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

__all__ = ["FloodPolicy", "Refused", "SenderLimiter"]

MINUTE = 60.0
HOUR = 3600.0
PER_MINUTE = "sender_rate_limited"
PER_HOUR = "sender_hourly_cap"


@dataclass(frozen=True, slots=True)
class FloodPolicy:
    per_minute: int = 30  # one sender's messages reaching the agent in any 60 s
    open_per_hour: int = 60  # agent runs per sender per hour when the channel is open to everyone
    chat_queue: int = 50  # messages waiting in one chat's queue; more are recorded, not answered

    def __post_init__(self) -> None:
        if self.per_minute < 1 or self.open_per_hour < 1 or self.chat_queue < 1:
            raise ValueError("flood limits must each be at least 1")


@dataclass(frozen=True, slots=True)
class Refused:
    """Over a limit: `reason` is the activity code; `first` is true for the first refusal of
    this flood (say why then, and stay quiet about the rest)."""

    reason: str
    first: bool


class SenderLimiter:
    # Bound on the senders remembered; beyond it, senders with nothing in the last hour are
    # forgotten (a stranger flood from many numbers must not grow memory without end).
    _SWEEP_AT = 4096

    def __init__(self, policy: FloodPolicy) -> None:
        self._policy = policy
        self._seen: dict[str, collections.deque[float]] = {}
        self._refusing: set[str] = set()

    def admit(self, sender: str, now: float, open_access: bool) -> Refused | None:
        """Count one message of `sender` at `now`: None when it may go on to the agent, else
        why not. `open_access`: the sender is let in only because the channel is open to
        everyone (the hourly cap applies). Refused messages are not counted."""
        times = self._seen.setdefault(sender, collections.deque())
        keep = HOUR if open_access else MINUTE
        while times and times[0] <= now - keep:
            times.popleft()
        in_minute = sum(1 for t in times if t > now - MINUTE)
        reason = None
        if in_minute >= self._policy.per_minute:
            reason = PER_MINUTE
        elif open_access and len(times) >= self._policy.open_per_hour:
            reason = PER_HOUR
        if reason is not None:
            first = sender not in self._refusing
            self._refusing.add(sender)
            return Refused(reason, first)
        self._refusing.discard(sender)
        times.append(now)
        if len(self._seen) > self._SWEEP_AT:
            self._sweep(now)
        return None

    def _sweep(self, now: float) -> None:
        for sender in [s for s, times in self._seen.items() if not times or times[-1] <= now - HOUR]:
            del self._seen[sender]
            self._refusing.discard(sender)

    def tracked(self) -> int:
        """How many senders are remembered (for tests of the memory bound)."""
        return len(self._seen)
