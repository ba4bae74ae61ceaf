"""wasim's pairing-code flow with plain, unmodified Baileys (no product code): the companion asks
for a code, the phone types it (through the `wasim pair` command), and the device links, restarts
with 515 and logs in as after a QR scan; a wrong code leaves Baileys unlinked and told."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from testkit.baileys import BaileysDriver
from testkit.cli import wasim_cli as _wasim

from wasim.protocol.pairing import PairingError
from wasim.server.app import Wasim
from wasim.server.control import start_control

pytestmark = pytest.mark.e2e

StartBaileys = Callable[..., Awaitable[BaileysDriver]]


async def test_baileys_links_by_code_typed_with_wasim_pair_then_logs_in(
    sim: Wasim, make_baileys: StartBaileys, tmp_path: Path
) -> None:
    runner, control = await start_control(sim)
    try:
        client = await make_baileys()
        mark = await client.connect(sim.url, sim.root_public_key)
        await client.wait("qr", since=mark)
        code = (await client.command("pairingCode", phone=sim.default_phone))["code"]
        await sim.events.wait_for("linkcode.requested")

        status, _, err = await _wasim("pair", "--control", control, "NOTACODE!")
        assert status != 0 and "8 letters and digits" in err
        status, out, err = await _wasim("pair", "--control", control, f"{code[:4]}-{code[4:]}")
        assert status == 0, err
        linked = json.loads(out)
        assert linked["device_jid"] == f"{sim.default_phone}:2@s.whatsapp.net"

        closed = await client.wait_close(mark)
        assert closed["statusCode"] == 515  # restart required, as after a scan
        mark = await client.connect(sim.url, sim.root_public_key)
        await client.wait_open(mark)
        creds = await client.creds()
        assert creds["me"]["id"] == linked["device_jid"] and creds["account"]
        status, _, err = await _wasim("pair", "--control", control, code)
        assert status != 0 and "no device is waiting for a code" in err  # a code links once
    finally:
        await runner.cleanup()


async def test_a_wrong_code_is_refused_and_baileys_stays_unlinked(sim: Wasim, make_baileys: StartBaileys) -> None:
    client = await make_baileys()
    mark = await client.connect(sim.url, sim.root_public_key)
    await client.wait("qr", since=mark)
    code = (await client.command("pairingCode", phone=sim.default_phone, code="ABCD2345"))["code"]
    assert code == "ABCD2345"
    with pytest.raises(PairingError, match=r"Couldn't link device\. Check the code"):
        await sim.pair("ABCD2346")
    event = await sim.events.wait_for("linkcode.wrong")
    assert "not the code shown" in event.data["why"]
    assert sim.state.accounts[sim.default_phone].live_devices() == []
    assert not (await client.creds()).get("account"), "no pair-success came"


async def test_a_number_with_no_account_gets_an_error_and_the_phone_has_nothing_to_type(
    sim: Wasim, make_baileys: StartBaileys
) -> None:
    client = await make_baileys()
    mark = await client.connect(sim.url, sim.root_public_key)
    await client.wait("qr", since=mark)
    await client.command("pairingCode", phone="4930123456")
    event = await sim.events.wait_for("linkcode.refused")
    assert event.data["why"] == "not on WhatsApp"
    with pytest.raises(PairingError, match="no device is waiting for a code"):
        await sim.pair("ABCD2345", phone="+4930123456")
