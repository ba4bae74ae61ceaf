"""The spec's "QR Code Authentication" and "Starting and Stopping", on real Baileys via wasim."""

from __future__ import annotations

import asyncio
import time

import pytest
from testkit.channel import MakeChannel, link, wait_state

from cortask.channels.whatsapp.authstore import AuthDirInUse
from cortask.channels.whatsapp.channel import NotLinked
from cortask.channels.whatsapp.state import ConnectionState
from wasim.server.app import Wasim

pytestmark = pytest.mark.e2e


async def test_qr_is_shown_scanned_restart_followed_credentials_persisted_and_channel_starts(
    sim: Wasim, make_channel: MakeChannel
) -> None:
    channel = await make_channel(sim)
    started = time.monotonic()
    qrs = channel.generate_qr()
    qr = await anext(qrs)
    assert qr.data.startswith("https://wa.me/settings/linked_devices#")
    assert qr.png().startswith(b"\x89PNG") and "<svg" in qr.svg() and "█" in qr.terminal()
    assert 55 <= qr.seconds_left(time.time()) <= 60
    assert channel.status.state is ConnectionState.LINKING
    await sim.phone.scan(qr.data)
    await wait_state(channel, ConnectionState.OPEN)  # 515 followed at once, not counted as a failure
    assert channel.status.attempt == 0 and time.monotonic() - started < 30
    assert channel.is_linked(), "credentials are persisted in the auth directory"
    assert sim.snapshot()["accounts"][0]["devices"][0]["connected"]


async def test_a_restarted_service_needs_no_new_scan(sim: Wasim, make_channel: MakeChannel) -> None:
    first = await make_channel(sim)
    await link(first, sim)
    await first.close()  # Ctrl-C / SIGTERM: closes the socket, keeps the link
    again = await make_channel(sim)
    await again.start()
    await wait_state(again, ConnectionState.OPEN)
    assert len(sim.state.accounts[sim.default_phone].live_devices()) == 1, "the same device, no new link"


async def test_start_without_a_link_says_how_to_link(sim: Wasim, make_channel: MakeChannel) -> None:
    channel = await make_channel(sim)
    with pytest.raises(NotLinked, match="WhatsApp is not linked: generate a QR code and scan it first"):
        await channel.start()


async def test_qr_expires_when_nobody_scans_and_a_new_one_can_be_generated(
    sim: Wasim, make_channel: MakeChannel
) -> None:
    channel = await make_channel(sim, qr_session_seconds=3.0)
    await channel.warm_up()  # so that a loaded machine still shows a code within the short session
    codes = [qr async for qr in channel.generate_qr()]  # ends when the session expires
    assert codes
    status = await wait_state(channel, ConnectionState.UNLINKED)
    assert "expired" in status.sentence
    await sim.events.wait_for("connection.closed", lambda e: e.data["role"] == "registration")
    # The expired code links nothing; a new session gives a new code that does.
    with pytest.raises(Exception, match="unknown or expired"):
        await sim.phone.scan(codes[-1].data)
    await link(channel, sim)


async def test_a_second_generate_qr_follows_the_live_session(sim: Wasim, make_channel: MakeChannel) -> None:
    channel = await make_channel(sim)
    first = await anext(channel.generate_qr())
    second = await anext(channel.generate_qr())
    assert second.data == first.data
    registrations = [c for c in sim.connections if c.kind.value == "registration"]
    assert len(registrations) == 1, "one pairing socket, not two"


async def test_logout_removes_the_auth_directory(sim: Wasim, make_channel: MakeChannel) -> None:
    channel = await make_channel(sim)
    await link(channel, sim)
    auth_dir = channel.config.auth_dir
    assert auth_dir.exists()
    await channel.logout()
    assert not auth_dir.exists()
    assert channel.status.state is ConnectionState.UNLINKED


async def test_stop_logs_the_device_out_on_the_server_and_says_unlinked(sim: Wasim, make_channel: MakeChannel) -> None:
    channel = await make_channel(sim)
    await link(channel, sim)
    since = sim.events.last_seq
    await channel.stop()
    await sim.events.wait_for("device.unlinked", since=since)
    assert sim.snapshot()["accounts"][0]["devices"][0]["linked"] is False
    assert channel.status.state is ConnectionState.UNLINKED
    with pytest.raises(NotLinked):
        await channel.start()


async def test_pause_keeps_the_link_and_resume_reconnects(sim: Wasim, make_channel: MakeChannel) -> None:
    channel = await make_channel(sim)
    await link(channel, sim)
    await channel.pause()
    assert channel.status.state is ConnectionState.PAUSED
    await sim.events.wait_for("connection.closed", lambda e: e.data["role"] == "login")
    assert sim.snapshot()["accounts"][0]["devices"][0]["linked"] is True
    await channel.resume()
    await wait_state(channel, ConnectionState.OPEN)


async def test_a_second_instance_on_the_same_link_fails_at_once_naming_the_owner(
    sim: Wasim, make_channel: MakeChannel
) -> None:
    first = await make_channel(sim)
    await link(first, sim)
    second = await make_channel(sim)
    with pytest.raises(AuthDirInUse, match=r"already in use by process \d+"):
        await second.start()
    await asyncio.sleep(0)
    assert first.status.state is ConnectionState.OPEN
