"""Bad input closes only the offending connection, with a logged reason; wasim serves on."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import pytest
from testkit.baileys import BaileysDriver, link_device
from testkit.rawclient import RawClient
from websockets.exceptions import ConnectionClosed

from wasim.protocol import wa_pb2
from wasim.protocol.noise import INTRO_HEADER, frame
from wasim.server.app import Wasim

pytestmark = pytest.mark.e2e

StartBaileys = Callable[..., Awaitable[BaileysDriver]]


async def _send_and_expect_close(raw: RawClient, data: bytes) -> None:
    await raw.ws.send(data)
    with pytest.raises(ConnectionClosed):
        while True:
            await raw.ws.recv()


# A registration (QR) payload: wasim keeps such a connection open and waits for nodes.
REGISTRATION_PAYLOAD = wa_pb2.ClientPayload(
    device_pairing_data=wa_pb2.ClientPayload.DevicePairingRegistrationData(
        e_regid=b"\x00\x00\x01\x02", e_keytype=b"\x05", e_ident=os.urandom(32), e_skey_id=b"\x00\x00\x01"
    )
).SerializeToString()


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("garbage", "bad intro header"),
        ("wrong_version", "unsupported protocol version"),
        ("bad_hello", "not a valid HandshakeMessage"),
        ("hello_without_key", "ClientHello with a 32-byte ephemeral"),
        ("oversized_frame", "exceeds the limit"),
        ("undecodable_node", "protocol error"),
        ("forged_frame", "failed authentication"),
    ],
)
async def test_bad_input_closes_that_connection_with_a_reason_and_wasim_serves_on(
    sim: Wasim, make_baileys: StartBaileys, case: str, reason: str
) -> None:
    client = await make_baileys()
    await link_device(sim, client)
    since = sim.events.last_seq

    raw = await RawClient.open(sim.url)
    if case == "garbage":
        await _send_and_expect_close(raw, os.urandom(64).replace(b"W", b"X"))
    elif case == "wrong_version":
        await _send_and_expect_close(raw, b"WA\x05\x02" + frame(b"\x00"))
    elif case == "bad_hello":
        await _send_and_expect_close(raw, INTRO_HEADER + frame(b"\xff\xff\xff\xff"))
    elif case == "hello_without_key":
        hello = wa_pb2.HandshakeMessage(client_hello=wa_pb2.HandshakeMessage.ClientHello(ephemeral=b"short"))
        await _send_and_expect_close(raw, INTRO_HEADER + frame(hello.SerializeToString()))
    elif case == "oversized_frame":
        await _send_and_expect_close(raw, INTRO_HEADER + b"\xff\xff\xff" + b"\x00" * 100)
    elif case == "undecodable_node":
        await raw.handshake(REGISTRATION_PAYLOAD)
        await raw.send_encrypted(b"\x00\xf8\xff\xff")  # a list claiming 255 items, then nothing
        with pytest.raises(ConnectionClosed):
            while True:
                await raw.ws.recv()
    else:
        await raw.handshake(REGISTRATION_PAYLOAD)
        await _send_and_expect_close(raw, frame(os.urandom(40)))

    closed = await sim.events.wait_for("connection.closed", lambda e: reason in e.data["reason"], since=since)
    assert closed.data["reason"].startswith("protocol error")
    # The linked client was not disturbed, and a new client can still link.
    assert [c for c in sim.connections if c.device is not None], "the linked Baileys is still connected"
    await link_device(sim, await make_baileys("second-auth"))
