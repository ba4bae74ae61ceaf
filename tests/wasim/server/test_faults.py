"""Every fault wasim injects ends a linked Baileys with the DisconnectReason real WhatsApp causes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from testkit.baileys import BaileysDriver, link_device

from wasim.server.app import Wasim
from wasim.server.faults import Fault

pytestmark = pytest.mark.e2e

StartBaileys = Callable[..., Awaitable[BaileysDriver]]

KEEP_ALIVE_MS = 1000  # Baileys notices a silent drop after keep-alive + 5 s without a frame

# fault in -> (Baileys' statusCode, Baileys' message) out
FAULT_TABLE: list[tuple[Fault, int, str]] = [
    (Fault("stream_error", 515), 515, "Stream Errored (restart required)"),
    (Fault("stream_error", 401), 401, "Stream Errored (conflict)"),
    (Fault("stream_error", 403), 403, "Stream Errored (unknown)"),
    (Fault("stream_error", 411), 411, "Stream Errored (unknown)"),
    (Fault("stream_error", 440), 440, "Stream Errored (conflict)"),
    (Fault("stream_error", 500), 500, "Stream Errored (unknown)"),
    (Fault("stream_error", 503), 503, "Stream Errored (unknown)"),
    (Fault("failure", 401), 401, "Connection Failure"),
    (Fault("failure", 403), 403, "Connection Failure"),
    (Fault("failure", 405), 405, "Connection Failure"),
    (Fault("downgrade"), 411, "Multi-device beta not joined"),
    (Fault("stream_end"), 428, "Connection Terminated by Server"),
    (Fault("close"), 428, "Connection Terminated"),
    (Fault("drop"), 408, "Connection was lost"),
]


async def test_each_fault_gives_the_disconnect_reason_baileys_reports(sim: Wasim, make_baileys: StartBaileys) -> None:
    client = await make_baileys()
    await link_device(sim, client, keepAliveMs=KEEP_ALIVE_MS)
    seen: list[tuple[str, object, object]] = []
    for fault, _code, _message in FAULT_TABLE:
        mark = await client.connect(sim.url, sim.root_public_key, keepAliveMs=KEEP_ALIVE_MS)
        await client.wait_open(mark)
        mark = client.mark()
        await sim.inject(fault)
        closed = await client.wait_close(mark, timeout=20)
        seen.append((f"{fault.kind} {fault.code}", closed["statusCode"], closed["message"]))
    assert seen == [(f"{f.kind} {f.code}", code, msg) for f, code, msg in FAULT_TABLE]


async def test_refused_connections_give_408_then_recover(sim: Wasim, make_baileys: StartBaileys) -> None:
    client = await make_baileys()
    await link_device(sim, client)
    mark = client.mark()
    await sim.inject(Fault("refuse", seconds=3))
    # The server's listener is gone; the live connection stays until it is closed.
    await client.command("end")
    mark = await client.connect(sim.url, sim.root_public_key)
    closed = await client.wait_close(mark)
    assert closed["statusCode"] == 408, closed
    await sim.events.wait_for("server.accepting", timeout=10)
    mark = await client.connect(sim.url, sim.root_public_key)
    await client.wait_open(mark)


async def test_phone_unlinking_a_device_ends_it_with_401(sim: Wasim, make_baileys: StartBaileys) -> None:
    client = await make_baileys()
    creds = await link_device(sim, client)
    mark = client.mark()
    device = int(str(creds["me"]["id"]).split(":")[1].split("@")[0])
    await sim.phone.unlink(sim.default_phone, device)
    closed = await client.wait_close(mark)
    assert closed["statusCode"] == 401
    mark = await client.connect(sim.url, sim.root_public_key)
    assert (await client.wait_close(mark))["statusCode"] == 401
