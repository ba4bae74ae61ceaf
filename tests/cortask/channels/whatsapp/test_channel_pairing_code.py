"""Linking by phone number instead of a QR (issue #15), on real Baileys through the real sidecar
on wasim: the code flow links as well as a QR scan, a wrong or late code is refused, a custom code
works, and QR and code can be switched in one session."""

from __future__ import annotations

import asyncio
import time

import pytest
from testkit.channel import MakeChannel, link, reply_seen, wait_state

from cortask.channels.whatsapp.channel import ChannelError
from cortask.channels.whatsapp.state import ConnectionState
from cortask.contacts.access import AccessPolicy, TrustedContact
from wasim.protocol.pairing import PairingError
from wasim.server.app import Wasim

pytestmark = pytest.mark.e2e

ADA = "+4915123456789"


async def test_link_by_code_then_a_trusted_contact_gets_a_reply_and_the_link_survives_a_restart(
    sim: Wasim, make_channel: MakeChannel
) -> None:
    channel = await make_channel(sim)
    code = await channel.request_pairing_code(sim.default_phone)
    assert len(code.code) == 8 and code.grouped == f"{code.code[:4]}-{code.code[4:]}"
    assert 55 <= code.seconds_left(time.time()) <= 60
    assert channel.status.state is ConnectionState.LINKING and code.grouped in channel.status.sentence
    assert "Link with phone number instead" in (channel.status.action or "")
    result = await sim.pair(code.grouped.lower())  # typed on the phone: case and dash don't matter
    assert result.phone == "+" + sim.default_phone
    await wait_state(channel, ConnectionState.OPEN)  # pair-success, 515 and login, as after a scan
    assert channel.is_linked()

    sim.add_contact(ADA, "Ada")
    channel.set_policy(AccessPolicy((TrustedContact.parse(ADA, "write", name="Ada"),)))
    await sim.messaging.send(ADA, "hello")
    assert await reply_seen(sim, ADA) == ["echo: hello"]

    await channel.close()
    again = await make_channel(sim)
    await again.start()  # no code, no QR: the stored link
    await wait_state(again, ConnectionState.OPEN)
    assert len(sim.state.accounts[sim.default_phone].live_devices()) == 1


async def test_a_wrong_code_is_refused_on_the_phone_and_ends_linking_with_what_to_do(
    sim: Wasim, make_channel: MakeChannel
) -> None:
    channel = await make_channel(sim)
    code = await channel.request_pairing_code(sim.default_phone)
    wrong = "ZZZZZZZZ" if code.code != "ZZZZZZZZ" else "YYYYYYYY"
    with pytest.raises(PairingError, match="Couldn't link device"):
        await sim.pair(wrong)
    status = await wait_state(channel, ConnectionState.UNLINKED)
    assert "refused the code" in status.sentence and "new code" in (status.action or "")
    assert not channel.is_linked() and sim.state.accounts[sim.default_phone].live_devices() == []
    with pytest.raises(PairingError):
        await sim.pair(code.code)  # the code is spent, even typed right now
    # A new session links by code again, from fresh credentials.
    again = await channel.request_pairing_code(sim.default_phone)
    await sim.pair(again.code)
    await wait_state(channel, ConnectionState.OPEN)


async def test_an_expired_code_links_nothing(sim: Wasim, make_channel: MakeChannel) -> None:
    channel = await make_channel(sim, qr_session_seconds=4.0)
    await channel.warm_up()
    code = await channel.request_pairing_code(sim.default_phone)
    status = await wait_state(channel, ConnectionState.UNLINKED, timeout=20)
    assert "code expired" in status.sentence
    await sim.events.wait_for("connection.closed", lambda e: e.data["role"] == "registration")
    with pytest.raises(PairingError, match="expired"):
        await sim.pair(code.code)
    assert not channel.is_linked()


async def test_wasim_refuses_a_code_typed_after_whatsapp_s_window(sim: Wasim, make_channel: MakeChannel) -> None:
    sim.link_codes.code_seconds = 0.5  # WhatsApp's window is 160 s; the channel's own session is longer here
    channel = await make_channel(sim)
    code = await channel.request_pairing_code(sim.default_phone)
    await asyncio.sleep(1)
    with pytest.raises(PairingError, match="the code has expired"):
        await sim.pair(code.code)
    assert channel.status.state is ConnectionState.LINKING


async def test_a_custom_code_links(sim: Wasim, make_channel: MakeChannel) -> None:
    channel = await make_channel(sim)
    code = await channel.request_pairing_code(sim.default_phone, "CORTASK1")
    assert code.code == "CORTASK1" and code.grouped == "CORT-ASK1"
    await sim.pair("cort-ask1")
    await wait_state(channel, ConnectionState.OPEN)


async def test_a_number_not_on_whatsapp_is_refused_with_what_to_do(sim: Wasim, make_channel: MakeChannel) -> None:
    channel = await make_channel(sim)
    with pytest.raises(ChannelError, match=r"no account for \+4930123456.*QR code instead"):
        await channel.request_pairing_code("4930123456")
    assert channel.status.state is ConnectionState.LINKING  # the QR of the session still links
    await link(channel, sim)


async def test_switching_from_qr_to_code_and_back_in_one_session(sim: Wasim, make_channel: MakeChannel) -> None:
    channel = await make_channel(sim)
    qr = await anext(channel.generate_qr())
    code = await channel.request_pairing_code(sim.default_phone)
    assert channel.status.state is ConnectionState.LINKING and code.grouped in channel.status.sentence
    channel.back_to_qr()
    assert "QR code to be scanned" in channel.status.sentence
    registrations = [c for c in sim.connections if c.kind.value == "registration"]
    assert len(registrations) == 1, "one linking connection for both ways"
    await sim.phone.scan(qr.data)  # the QR still links after a code was asked for
    await wait_state(channel, ConnectionState.OPEN)
    assert channel.is_linked()


async def test_a_new_code_on_request_replaces_the_old_one_in_the_same_session(
    sim: Wasim, make_channel: MakeChannel
) -> None:
    channel = await make_channel(sim)
    old = await channel.request_pairing_code(sim.default_phone)
    new = await channel.request_pairing_code(sim.default_phone)
    assert new.code != old.code
    registrations = [c for c in sim.connections if c.kind.value == "registration"]
    assert len(registrations) == 1, "a new code, not a new connection"
    await sim.pair(new.code)
    await wait_state(channel, ConnectionState.OPEN)
