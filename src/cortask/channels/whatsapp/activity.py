"""The channel's recent message activity: what came in, what was done with it, the replies.

Entries are plain dicts (the gateway and the CLI show them as they are): `at`, `kind`, `chat`,
`message_id`, and a kind's own details (`reason`, `sender`, `verdict`, `chars`, `error`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from cortask.broadcast import Broadcast

Entry = dict[str, Any]


class ActivityLog:
    def __init__(self, capacity: int = 500) -> None:
        self._entries: collections.deque[Entry] = collections.deque(maxlen=capacity)
        self._changed = asyncio.Event()
        self._feed: Broadcast[Entry] = Broadcast()
        self.listeners: list[Callable[[Entry], None]] = []  # called at once, in order (the metrics)

    @property
    def entries(self) -> list[Entry]:
        """Oldest first."""
        return list(self._entries)

    def record(self, kind: str, chat: str | None, message_id: str | None, **detail: Any) -> None:
        entry = {"at": time.time(), "kind": kind, "chat": chat, "message_id": message_id, **detail}
        self._entries.append(entry)
        self._changed.set()
        self._changed = asyncio.Event()
        self._feed.publish(entry)
        for listener in self.listeners:
            try:
                listener(entry)
            except Exception:  # counting must never stop a message being handled
                logging.getLogger("cortask.whatsapp").exception("an activity listener failed")

    async def wait(self, predicate: Callable[[Entry], bool], timeout: float = 30) -> Entry:
        """The first entry (kept or coming) that `predicate` accepts."""
        async with asyncio.timeout(timeout):
            while True:
                changed = self._changed
                for entry in self._entries:
                    if predicate(entry):
                        return entry
                await changed.wait()

    async def follow(self) -> AsyncIterator[Entry]:
        """Every entry from now on."""
        with self._feed.subscribe() as entries:
            async for entry in entries:
                yield entry
