"""Helpers for the channel's end-to-end tests: a channel on a wasim sandbox, linked like a person does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from cortask.app.actions import CortaskApp
from cortask.channels.whatsapp.channel import WhatsAppChannel
from cortask.channels.whatsapp.config import Sandbox
from cortask.channels.whatsapp.inbound import InboundText
from cortask.channels.whatsapp.state import ChannelStatus, ConnectionState
from cortask.service import CortaskService
from wasim.server.app import Wasim

MakeChannel = Callable[..., Awaitable[WhatsAppChannel]]


async def echo(message: InboundText) -> str:
    return f"echo: {message.text}"


async def wait_state(
    channel: WhatsAppChannel,
    *states: ConnectionState,
    timeout: float = 30,
    where: Callable[[ChannelStatus], bool] | None = None,
) -> ChannelStatus:
    async with asyncio.timeout(timeout):
        async for status in channel.subscribe():
            if status.state in states and (where is None or where(status)):
                return status
    raise AssertionError("unreachable")


async def link(channel: WhatsAppChannel, sim: Wasim) -> None:
    """Generate a QR, let the simulated phone scan it, wait until the channel is open."""
    async for qr in channel.generate_qr():
        await sim.phone.scan(qr.data)
        break
    await wait_state(channel, ConnectionState.OPEN)


def texts_received(sim: Wasim, phone: str) -> list[str]:
    return [str(x["text"]) for x in sim.inbox(phone) if x["type"] == "message" and x.get("text") is not None]


def inbox_sequence(sim: Wasim, phone: str) -> list[Any]:
    """What the contact saw, in order: chatstates by name and messages by text."""
    return [
        x["state"] if x["type"] == "chatstate" else x["text"]
        for x in sim.inbox(phone)
        if x["type"] in ("chatstate", "message")
    ]


async def reply_seen(sim: Wasim, phone: str, count: int = 1, *, typing: bool = True) -> list[str]:
    """The texts `phone` received once `count` replies arrived (and, for agent replies, typing
    was cleared after the last one)."""

    def done() -> bool:
        if len(texts_received(sim, phone)) < count:
            return False
        return not typing or inbox_sequence(sim, phone)[-1] == "paused"

    if not done():
        await sim.events.wait_for("contact.chatstate" if typing else "contact.received", lambda e: done(), timeout=20)
    return texts_received(sim, phone)


@contextlib.asynccontextmanager
async def serving_app(sim: Wasim, home: Path) -> AsyncIterator[CortaskApp]:
    """The application layer as `cortask serve` runs it (in this process), on the wasim sandbox,
    with no pacing so tests are quick; closed at the end."""
    service = CortaskService(
        home,
        sandbox=Sandbox(sim.url, sim.root_public_key),
        environ={},
        channel_options={"pacing": None, "sidecar_log_level": "warn"},
    )
    app = CortaskApp(service, serving=True)
    await app.open()
    try:
        yield app
    finally:
        await app.close()
