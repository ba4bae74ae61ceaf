"""wasim part 1, end to end: real Baileys (Node) links by QR, logs in, restarts, logs out."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from testkit.baileys import BaileysDriver, link_device

from wasim.server.app import Wasim

pytestmark = pytest.mark.e2e

StartBaileys = Callable[..., Awaitable[BaileysDriver]]


async def test_fresh_client_gets_a_qr_scans_restarts_and_opens(sim: Wasim, make_baileys: StartBaileys) -> None:
    client = await make_baileys()
    mark = await client.connect(sim.url, sim.root_public_key)
    qr = await client.wait("qr", since=mark)
    assert qr["qr"].count(",") == 4  # ref, noise key, identity key, adv secret, platform

    result = await sim.phone.scan(qr["qr"])

    closed = await client.wait_close(mark)
    assert (closed["statusCode"], closed["message"]) == (515, "Stream Errored (restart required)")
    assert any(e["event"] == "connection" and e["isNewLogin"] for e in client.events[mark:])
    mark = await client.connect(sim.url, sim.root_public_key)
    await client.wait_open(mark)
    assert not any(e["event"] == "qr" for e in client.events[mark:])

    await client.close()
    me = client.saved_creds()["me"]
    account = sim.state.account(sim.default_phone)
    assert account is not None
    assert me["id"] == result.device_jid == f"{account.phone}:2@s.whatsapp.net"
    assert me["lid"] == result.lid_jid == f"{account.lid}:2@lid"
    assert account.devices[2].prekeys, "Baileys uploads its one-time pre-keys at the first login"


async def test_saved_credentials_log_in_without_a_qr_also_after_wasim_restarts(
    tmp_path: Path, make_baileys: StartBaileys
) -> None:
    state = tmp_path / "wasim-state"
    async with Wasim(state) as sim:
        first = await make_baileys("auth")
        await link_device(sim, first)
        await first.close()

        again = await make_baileys(auth_dir=tmp_path / "auth")  # a new process, same credentials
        mark = await again.connect(sim.url, sim.root_public_key)
        await again.wait_open(mark)
        assert not any(e["event"] == "qr" for e in again.events[mark:])
        await again.close()
        port, root = sim.port, sim.root_public_key

    async with Wasim(state, port=port) as restarted:
        assert restarted.root_public_key == root, "the root key persists, so clients still trust wasim"
        third = await make_baileys(auth_dir=tmp_path / "auth")
        mark = await third.connect(restarted.url, restarted.root_public_key)
        await third.wait_open(mark)
        assert not any(e["event"] == "qr" for e in third.events[mark:])


async def test_unscanned_qr_times_out_on_baileys_schedule(sim: Wasim, make_baileys: StartBaileys) -> None:
    client = await make_baileys()
    # Baileys shows the first ref for qrTimeout and each later one for qrTimeout too when it is set:
    # six refs from wasim, so the session ends after about 6 x qrTimeout.
    qr_timeout_ms = 800
    mark = await client.connect(sim.url, sim.root_public_key, qrTimeoutMs=qr_timeout_ms)
    closed = await client.wait_close(mark, timeout=30)
    assert (closed["statusCode"], closed["message"]) == (408, "QR refs attempts ended")
    qrs = [e for e in client.events[mark:] if e["event"] == "qr"]
    assert len(qrs) == 6 and len({q["qr"] for q in qrs}) == 6
    elapsed_ms = closed["ms"] - qrs[0]["ms"]
    assert 6 * qr_timeout_ms * 0.9 <= elapsed_ms <= 6 * qr_timeout_ms + 3000, elapsed_ms
    # The expired refs link nothing.
    with pytest.raises(Exception, match="unknown or expired"):
        await sim.phone.scan(qrs[-1]["qr"])


async def test_logout_unlinks_and_the_old_credentials_get_401(sim: Wasim, make_baileys: StartBaileys) -> None:
    client = await make_baileys()
    await link_device(sim, client)
    mark = client.mark()
    since = sim.events.last_seq
    await client.command("logout")
    closed = await client.wait_close(mark)
    assert closed["statusCode"] == 401
    await sim.events.wait_for("device.unlinked", since=since, timeout=10)
    account = sim.state.account(sim.default_phone)
    assert account is not None and account.devices[2].removed

    mark = await client.connect(sim.url, sim.root_public_key)
    closed = await client.wait_close(mark)
    assert (closed["statusCode"], closed["message"]) == (401, "Connection Failure")


async def test_a_refused_or_foreign_qr_links_nothing(sim: Wasim, make_baileys: StartBaileys) -> None:
    client = await make_baileys()
    mark = await client.connect(sim.url, sim.root_public_key)
    qr = (await client.wait("qr", since=mark))["qr"]
    sim.phone.refuse(qr)
    with pytest.raises(Exception, match="refused"):
        await sim.phone.scan(qr)
    forged = qr.replace(qr.split("#")[1].split(",")[0], "2@not-a-ref-wasim-issued")
    with pytest.raises(Exception, match="unknown or expired"):
        await sim.phone.scan(forged)
    assert not sim.snapshot()["accounts"], "nothing was linked"


async def test_a_newer_login_of_the_same_device_replaces_the_older_socket(
    sim: Wasim, make_baileys: StartBaileys, tmp_path: Path
) -> None:
    """As on WhatsApp: one socket per linked device. The older one gets 440 "replaced" and nothing
    more, so a companion process left hanging cannot swallow messages meant for its successor."""
    older = await make_baileys("auth")
    await link_device(sim, older)
    sim.add_contact("+4915123456789", "Ada")
    shutil.copytree(tmp_path / "auth", tmp_path / "auth-copy")  # the same device, a second process
    newer = await make_baileys(auth_dir=tmp_path / "auth-copy")
    older_mark = len(older.events)
    mark = await newer.connect(sim.url, sim.root_public_key)
    await newer.wait_open(mark)
    closed = await older.wait_close(older_mark)
    assert closed["statusCode"] == 440

    await sim.messaging.send("+4915123456789", "for the newer socket")
    upsert = await newer.wait("upsert", since=mark)
    assert upsert["messages"][0]["message"]["conversation"] == "for the newer socket"
    assert not any(e["event"] == "upsert" for e in older.events[older_mark:])
