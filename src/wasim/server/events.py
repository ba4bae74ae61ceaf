"""An observable log of what happens inside wasim, so tests wait on conditions, never on sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    at: float
    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "kind": self.kind, **self.data}


class EventLog:
    def __init__(self, keep: int = 10_000) -> None:
        self._events: list[Event] = []
        self._keep = keep
        self._seq = 0
        self._changed = asyncio.Event()

    def emit(self, kind: str, /, **data: Any) -> Event:
        self._seq += 1
        event = Event(self._seq, time.time(), kind, data)
        self._events.append(event)
        if len(self._events) > self._keep:
            del self._events[: len(self._events) - self._keep]
        self._changed.set()
        self._changed = asyncio.Event()
        return event

    def since(self, seq: int = 0, kind: str | None = None) -> list[Event]:
        return [e for e in self._after(seq) if kind is None or e.kind == kind]

    def _after(self, seq: int) -> list[Event]:
        """The kept events after `seq`, found by position (sequence numbers are consecutive), so a
        poll costs what it returns, not the whole log."""
        if not self._events:
            return []
        return self._events[max(0, seq - self._events[0].seq + 1) :]

    @property
    def last_seq(self) -> int:
        return self._seq

    async def wait_for(
        self,
        kind: str,
        predicate: Callable[[Event], bool] = lambda e: True,
        *,
        since: int = 0,
        timeout: float = 30.0,
    ) -> Event:
        """The first event of `kind` after `since` that satisfies `predicate` (waiting if needed)."""
        async with asyncio.timeout(timeout):
            while True:
                changed = self._changed
                for e in self._after(since):
                    if e.kind == kind and predicate(e):
                        return e
                await changed.wait()
