"""The rare handshake frame wasim could not parse after a SIGKILL restart (issue #13), reproduced.

The cause: the sidecar handed Baileys' socket to commands as soon as it was created, before its
Noise handshake had finished. A read receipt or a typing state that Python sent to a freshly
restarted sidecar (the chat worker's "paused" after an agent's reply, a typing refresh) made
Baileys write a binary node while the handshake was still waiting for the server's hello. Its
noise handler frames a node without encryption until the handshake is done, so the server got a
plain stanza where the ClientFinish belongs: "not a valid HandshakeMessage". WhatsApp closes the
connection for that just as wasim does; the next attempt succeeded, hence "rare".

Here a WebSocket server that never answers holds the real sidecar (real Baileys) in the middle of
its handshake for as long as the test wants, and the test sends the commands Python sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from cortask.channels.whatsapp import wire
from cortask.channels.whatsapp.authstore import AuthStore
from cortask.channels.whatsapp.sidecar import Sidecar, SidecarError, locate_sidecar
from wasim.protocol import wa_pb2
from wasim.protocol.noise import INTRO_HEADER

pytestmark = pytest.mark.e2e

CHAT = "4915123456789@s.whatsapp.net"


class SilentServer:
    """Takes the WebSocket, keeps every message it gets, answers nothing (no ServerHello)."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.got_first = asyncio.Event()

    async def handle(self, ws: ServerConnection) -> None:
        async for message in ws:
            assert isinstance(message, bytes)
            self.received.append(message)
            self.got_first.set()


@pytest.fixture
async def silent() -> AsyncIterator[tuple[SilentServer, str]]:
    server = SilentServer()
    async with serve(server.handle, "127.0.0.1", 0, max_size=None, compression=None) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
        yield server, f"ws://127.0.0.1:{port}/ws/chat"


async def test_commands_sent_during_the_handshake_are_refused_and_nothing_but_the_hello_reaches_the_server(
    tmp_path: Path, silent: tuple[SilentServer, str]
) -> None:
    server, url = silent
    store = AuthStore.open(tmp_path / "auth")
    sidecar = Sidecar(locate_sidecar(), store, log_level="warn")
    await sidecar.start()
    try:
        root_key = "11" * 32  # never used: the server sends no certificate to check
        await sidecar.request(wire.Connect(sandbox=wire.SandboxTarget(url, root_key), connect_timeout_ms=30_000))
        await asyncio.wait_for(server.got_first.wait(), 20)  # the ClientHello: now mid-handshake

        refusals = []
        for command in (
            wire.Read((wire.MessageKey("3EB0AAAA", CHAT),)),
            wire.Presence("paused", CHAT),
            wire.SendText(CHAT, "hello", "3EB0BBBB"),
        ):
            with pytest.raises(SidecarError) as refused:
                await sidecar.request(command, timeout=10)
            refusals.append(str(refused.value))
        await asyncio.sleep(0.5)  # anything the commands made Baileys write has arrived by now

        assert len(server.received) == 1, (
            f"the server got {len(server.received)} frames during the handshake; after the hello: "
            + ", ".join(m[:16].hex() for m in server.received[1:])
        )
        hello = server.received[0]
        assert hello.startswith(INTRO_HEADER)
        assert wa_pb2.HandshakeMessage.FromString(hello[len(INTRO_HEADER) + 3 :]).HasField("client_hello")
        assert all("not connected" in r for r in refusals), refusals
    finally:
        await sidecar.stop()
        store.close()
