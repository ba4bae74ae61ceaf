"""The spec's reconnection rules, with wasim's faults and the real sidecar: terminal reasons stop,
others back off exponentially up to 10 attempts, a dead sidecar is a lost connection."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from testkit.channel import MakeChannel, link, wait_state

from cortask.channels.whatsapp.reconnect import ReconnectPolicy
from cortask.channels.whatsapp.state import ChannelStatus, ConnectionState
from wasim.server.app import Wasim
from wasim.server.faults import Fault

pytestmark = pytest.mark.e2e

FAST = ReconnectPolicy(base_delay=0.3, factor=2.0, max_delay=5.0, jitter=0.0, replaced_min_delay=1.5)


async def _no_sidecar(channel: object, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while channel.sidecar_pid is not None:  # type: ignore[attr-defined]  # noqa: ASYNC110 (a process property, no event to wait on)
            await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("fault", "state"),
    [
        (Fault("stream_error", 401), ConnectionState.LOGGED_OUT),
        (Fault("failure", 401), ConnectionState.LOGGED_OUT),
        (Fault("stream_error", 403), ConnectionState.FORBIDDEN),
        (Fault("stream_error", 411), ConnectionState.MULTIDEVICE_MISMATCH),
        (Fault("downgrade"), ConnectionState.MULTIDEVICE_MISMATCH),
    ],
)
async def test_terminal_reasons_stop_reconnecting_and_ask_for_a_new_link(
    sim: Wasim, make_channel: MakeChannel, fault: Fault, state: ConnectionState
) -> None:
    channel = await make_channel(sim, reconnect=FAST)
    await link(channel, sim)
    since = sim.events.last_seq
    await sim.inject(fault)
    status = await wait_state(channel, state)
    assert status.state.needs_relink and status.action and "QR" in status.action
    await _no_sidecar(channel)
    assert not sim.events.since(since, "connection.opened"), "no reconnection attempt was made"


async def test_a_restart_request_reconnects_at_once(sim: Wasim, make_channel: MakeChannel) -> None:
    channel = await make_channel(sim, reconnect=FAST)
    await link(channel, sim)
    since = sim.events.last_seq
    await sim.inject(Fault("stream_error", 515))
    await sim.events.wait_for("login", since=since)
    await wait_state(channel, ConnectionState.OPEN)
    assert channel.status.attempt == 0


async def test_a_lost_connection_is_retried_with_exponential_delays(sim: Wasim, make_channel: MakeChannel) -> None:
    channel = await make_channel(sim, reconnect=FAST)
    await link(channel, sim)
    seen: list[tuple[int, float]] = []

    async def watch() -> None:
        async for status in channel.subscribe():
            if status.state is ConnectionState.RECONNECTING and status.next_retry_at:
                seen.append((status.attempt, status.next_retry_at - time.time()))

    watcher = asyncio.create_task(watch())
    await sim.inject(Fault("refuse", seconds=2.5))  # new connections are refused for a while
    await sim.inject(Fault("close"))  # and the live one drops
    await sim.events.wait_for("server.accepting", timeout=10)
    await wait_state(channel, ConnectionState.OPEN, timeout=15)
    watcher.cancel()
    attempts = [a for a, _ in seen]
    delays = [d for _, d in seen]
    assert attempts[:3] == [1, 2, 3], seen
    assert delays[:3] == pytest.approx([0.3, 0.6, 1.2], abs=0.15), seen


async def test_ten_failed_attempts_give_up(sim: Wasim, make_channel: MakeChannel) -> None:
    policy = ReconnectPolicy(base_delay=0.02, factor=1.5, max_delay=0.2, jitter=0.0)
    channel = await make_channel(sim, reconnect=policy)
    await link(channel, sim)
    await sim.inject(Fault("refuse", seconds=60))
    await sim.inject(Fault("close"))
    status = await wait_state(channel, ConnectionState.GAVE_UP, timeout=60)
    assert status.max_attempts == 10 and status.action
    await _no_sidecar(channel)


async def test_replaced_by_another_client_waits_before_reconnecting(sim: Wasim, make_channel: MakeChannel) -> None:
    channel = await make_channel(sim, reconnect=FAST)
    await link(channel, sim)
    await sim.inject(Fault("stream_error", 440))
    status: ChannelStatus = await wait_state(channel, ConnectionState.RECONNECTING)
    assert status.next_retry_at is not None and status.next_retry_at - time.time() >= 1.3
    assert "another" in status.sentence.lower()
    await wait_state(channel, ConnectionState.OPEN, timeout=15)


async def test_a_killed_sidecar_is_restarted_at_once(sim: Wasim, make_channel: MakeChannel) -> None:
    channel = await make_channel(sim, reconnect=FAST)
    await link(channel, sim)
    pid = channel.sidecar_pid
    assert pid is not None
    since = sim.events.last_seq
    os.kill(pid, signal.SIGKILL)
    status = await wait_state(channel, ConnectionState.CONNECTING)
    assert "sidecar stopped unexpectedly" in status.sentence.lower() + (status.detail or "").lower()
    await sim.events.wait_for("login", since=since, timeout=20)
    await wait_state(channel, ConnectionState.OPEN, timeout=20)
    assert channel.sidecar_pid not in (None, pid)
