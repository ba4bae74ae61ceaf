"""Linking a phone: one QR session, its codes fanned out to every follower, and its deadline.

A session lasts `seconds` (60 by default) from its start, however many codes WhatsApp issues in
that time; when the deadline passes first, `on_expired` runs. Once the phone has scanned a code
(`scanned`), the deadline no longer applies: the link exists, and the restart WhatsApp asks for
next (515) must not be cut short by it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from cortask.broadcast import Broadcast
from cortask.channels.whatsapp.qr import QrCode


class QrSession:
    def __init__(self, seconds: float, on_expired: Callable[[], None]) -> None:
        self.seconds = seconds
        self.expires_at = time.time() + seconds
        self.latest: QrCode | None = None
        self._codes: Broadcast[QrCode] = Broadcast(replay_latest=True)
        self._deadline: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(seconds, on_expired)

    @property
    def deadline_pending(self) -> bool:
        return self._deadline is not None

    def show(self, data: str) -> QrCode:
        """A new code from WhatsApp: every follower gets it."""
        qr = QrCode(data, self.expires_at)
        self.latest = qr
        self._codes.publish(qr)
        return qr

    def scanned(self) -> None:
        self._cancel_deadline()

    def end(self) -> None:
        """Linked, expired, failed or closed: followers' loops finish."""
        self._cancel_deadline()
        self.latest = None
        self._codes.end()

    async def follow(self) -> AsyncIterator[QrCode]:
        """The current code (if any), then each new one, until the session ends."""
        with self._codes.subscribe() as codes:
            async for qr in codes:
                yield qr

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
