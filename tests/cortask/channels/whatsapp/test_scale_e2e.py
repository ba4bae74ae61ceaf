"""What bench/scale.py found with 1,000 chats at once (issue #18), through the real sidecar and
Baileys to wasim: a send asked for again while it is still under way goes out once, and a chat
that went quiet leaves nothing behind yet is answered again, once."""

from __future__ import annotations

import asyncio

import pytest
from testkit.channel import MakeChannel, link, reply_seen, texts_received

from cortask.channels.whatsapp import wire
from cortask.channels.whatsapp.pipeline import new_message_id
from cortask.contacts.access import TrustedContact
from wasim.server.app import Wasim

pytestmark = pytest.mark.e2e

ADA = "+4915123456789"
ADA_JID = "4915123456789@s.whatsapp.net"


async def test_a_send_asked_for_again_while_under_way_goes_out_once(sim: Wasim, make_channel: MakeChannel) -> None:
    # As when the pipeline's request timed out behind a long queue and its retry asks again under
    # the same reserved id: the sidecar joins the send under way instead of sending a second copy.
    sim.add_contact(ADA, "Ada")
    channel = await make_channel(sim, trusted_contacts=(TrustedContact.parse(ADA, "write"),), pacing=None)
    await link(channel, sim)
    mark = sim.events.last_seq
    message_id = new_message_id()
    send = wire.SendText(ADA_JID, "only once", message_id)
    first, again = await asyncio.gather(
        channel._supervisor.request(send), channel._supervisor.request(send)
    )  # fmt: skip
    assert first.id == again.id == message_id
    await sim.events.wait_for("contact.received", lambda e: e.data.get("id") == message_id, since=mark, timeout=20)
    await asyncio.sleep(1)  # a second copy would follow at once
    assert texts_received(sim, ADA) == ["only once"]
    assert sim.events.since(mark, "contact.duplicate") == [], "the account sent the message a second time"


async def test_a_chat_gone_quiet_keeps_no_worker_and_is_answered_once_again(
    sim: Wasim, make_channel: MakeChannel
) -> None:
    sim.add_contact(ADA, "Ada")
    channel = await make_channel(sim, trusted_contacts=(TrustedContact.parse(ADA, "write"),), pacing=None)
    await link(channel, sim)
    await sim.messaging.send(ADA, "first")
    assert await reply_seen(sim, ADA, 1) == ["echo: first"]
    pipeline = channel._pipeline
    async with asyncio.timeout(10):
        while pipeline.busy_chats:  # noqa: ASYNC110  (a count, with no event to wait on)
            await asyncio.sleep(0.05)
    assert not pipeline._workers and not pipeline._chats  # the quiet chat's worker and queue are gone
    await sim.messaging.send(ADA, "second")
    assert await reply_seen(sim, ADA, 2) == ["echo: first", "echo: second"]
    await asyncio.sleep(1)
    assert texts_received(sim, ADA) == ["echo: first", "echo: second"]
