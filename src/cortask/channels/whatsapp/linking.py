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
from dataclasses import dataclass

from cortask.broadcast import Broadcast
from cortask.channels.whatsapp.qr import QrCode


@dataclass(frozen=True, slots=True)
class PairingCode:
    """A code to type on the phone ("Link with phone number instead") instead of scanning a QR."""

    code: str  # eight characters, as WhatsApp issued it
    phone: str  # the account's own number, E.164 digits without "+"
    expires_at: float  # when the linking session ends (seconds since the epoch)

    @property
    def grouped(self) -> str:
        """As WhatsApp shows it, and as the phone's field expects it: ABCD-EFGH."""
        return f"{self.code[:4]}-{self.code[4:]}"

    def seconds_left(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))


class QrSession:
    def __init__(self, seconds: float, on_expired: Callable[[], None]) -> None:
        self.seconds = seconds
        self.expires_at = time.time() + seconds
        self.latest: QrCode | None = None
        self.code: PairingCode | None = None  # the pairing code asked for, if any
        self._codes: Broadcast[QrCode] = Broadcast(replay_latest=True)
        self._on_expired = on_expired
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

    def show_code(self, code: str, phone: str) -> PairingCode:
        """A pairing code from WhatsApp. The 60-second rule applies to it as to the QR: the
        session's deadline starts again from now, so a code asked for late still gets its minute."""
        if self._deadline is not None:
            self._deadline.cancel()
            self.expires_at = time.time() + self.seconds
            self._deadline = asyncio.get_running_loop().call_later(self.seconds, self._on_expired)
        self.code = PairingCode(code, phone, self.expires_at)
        return self.code

    async def ready(self) -> bool:
        """Wait until the linking connection is up (WhatsApp issued its first QR); False when the
        session ended first."""
        async for _ in self.follow():
            return True
        return False

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
