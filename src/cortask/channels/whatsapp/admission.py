"""Admitting the sidecar's message batches into the journal, in order, off the event pump.

A batch is acknowledged to the sidecar (its `done` callback) only once every message in it is
durably in the journal; until then the sidecar keeps it, and spills it to a file should it have to
exit. A journal that cannot be written (locked, full disk) is retried by the pipeline, so this
queue waits meanwhile, while connection events, receipts and the watchdog carry on. Batches are
admitted in arrival order, so acknowledgements (cumulative on the sidecar's side) stay in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from cortask.channels.whatsapp import wire

log = logging.getLogger("cortask.whatsapp")

Arrive = Callable[[wire.WAMessage, str], Awaitable[None]]
Done = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Batch:
    messages: Sequence[wire.WAMessage]
    type: str
    done: Done | None  # acknowledge it (to the sidecar that sent it), or discard its spill file


class Admitter:
    def __init__(self, arrive: Arrive) -> None:
        self._arrive = arrive
        self._queue: asyncio.Queue[Batch] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._busy = False

    def submit(self, batch: Batch) -> None:
        self._queue.put_nowait(batch)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="whatsapp-admit")

    @property
    def waiting(self) -> int:
        """Batches not yet admitted (acknowledged) in full."""
        return self._queue.qsize() + (1 if self._busy else 0)

    async def _run(self) -> None:
        while not self._queue.empty():
            batch = self._queue.get_nowait()
            self._busy = True
            try:
                for raw in batch.messages:
                    try:
                        await self._arrive(raw, batch.type)
                    except Exception:
                        # Not a journal outage (the pipeline retries those): a message we cannot
                        # handle at all must not hold up every later one.
                        log.exception("could not admit a message; it is left out")
                if batch.done is not None:
                    try:
                        await batch.done()
                    except Exception:  # an ack to a sidecar that is gone: it spilled or lost nothing of ours
                        log.exception("could not acknowledge a message batch")
            finally:
                self._busy = False

    async def close(self) -> None:
        """Stop admitting: what is not acknowledged stays with the sidecar (or in its spill file)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
