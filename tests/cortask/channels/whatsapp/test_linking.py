"""The linking session's clock (pure timing, no processes): the 60-second rule for the QR and for
a pairing code asked for late in the session."""

from __future__ import annotations

import asyncio
import time

from cortask.channels.whatsapp.linking import PairingCode, QrSession


async def test_a_code_asked_for_late_gets_the_whole_session_length_again() -> None:
    expired: list[float] = []
    fired = asyncio.Event()

    def on_expired() -> None:
        expired.append(time.monotonic())
        fired.set()

    session = QrSession(1.0, on_expired)
    session.show("qr-1")
    await asyncio.sleep(0.6)
    started = time.monotonic()
    code = session.show_code("ABCD2345", "4915112345678")
    assert code.grouped == "ABCD-2345" and session.code is code
    assert 0.9 < code.expires_at - time.time() <= 1.0
    await asyncio.sleep(0.5)  # past the QR's own deadline
    assert expired == [], "the QR's deadline no longer applies once a code is shown"
    async with asyncio.timeout(5):
        await fired.wait()
    assert len(expired) == 1 and expired[0] - started >= 0.98


async def test_once_scanned_a_code_does_not_restart_the_deadline() -> None:
    expired: list[bool] = []
    session = QrSession(0.2, lambda: expired.append(True))
    session.scanned()
    session.show_code("ABCD2345", "4915112345678")
    await asyncio.sleep(0.3)
    assert expired == [] and not session.deadline_pending


def test_the_code_is_shown_in_two_groups_with_its_time_left() -> None:
    code = PairingCode("K7QM3XPA", "4915112345678", expires_at=1000.0)
    assert code.grouped == "K7QM-3XPA"
    assert code.seconds_left(940.0) == 60 and code.seconds_left(1001.0) == 0


async def test_ready_is_false_when_the_session_ends_before_any_qr() -> None:
    session = QrSession(5, lambda: None)
    waiting = asyncio.create_task(session.ready())
    await asyncio.sleep(0)
    session.end()
    assert await waiting is False
    again = QrSession(5, lambda: None)
    again.show("qr")
    assert await again.ready() is True
    again.end()
