"""The spec's "Trusted Contacts", "Status Tracking" and "Limitations", end to end on real Baileys."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from testkit.channel import MakeChannel, inbox_sequence, link, reply_seen, texts_received

from cortask.channels.whatsapp.channel import ERROR_REPLY, READ_ONLY_REPLY
from cortask.channels.whatsapp.inbound import InboundText
from cortask.contacts.access import AccessPolicy, TrustedContact
from wasim.server.app import Wasim

pytestmark = pytest.mark.e2e

ADA, GRACE, LINUS, EVE = "+4915123456789", "+447911123456", "+14155550123", "+33612345678"


async def test_who_gets_in_read_write_admin_unknown_and_legacy_allowed_users(
    sim: Wasim, make_channel: MakeChannel
) -> None:
    trusted = (
        TrustedContact.parse(ADA, "write", name="Ada"),
        TrustedContact.parse(GRACE, "read", name="Grace"),
        TrustedContact.parse(LINUS, "admin"),
    )
    channel = await make_channel(sim, trusted_contacts=trusted)
    await link(channel, sim)
    for phone, name in ((ADA, "Ada"), (GRACE, "Grace"), (LINUS, "Linus"), (EVE, "Eve")):
        sim.add_contact(phone, name)

    # write and admin: the agent answers, with typing before the reply and paused after it.
    await sim.messaging.send(ADA, "hello")
    await sim.messaging.send(LINUS, "hi, admin here")
    assert await reply_seen(sim, ADA) == ["echo: hello"]
    assert inbox_sequence(sim, ADA) == ["composing", "echo: hello", "paused"]
    assert await reply_seen(sim, LINUS) == ["echo: hi, admin here"]

    # read: acknowledged (read receipt) and told it is read-only; no agent run.
    await sim.messaging.send(GRACE, "can you do something?")
    assert await reply_seen(sim, GRACE, typing=False) == [READ_ONLY_REPLY]
    assert any(x["type"] == "receipt" and x["receipt"] == "read" for x in sim.inbox(GRACE))
    assert "composing" not in inbox_sequence(sim, GRACE)

    # unknown: silently ignored: no reply, no typing, no read receipt.
    eve_first = await sim.messaging.send(EVE, "let me in")
    await channel.wait_activity(lambda a: a["message_id"] == eve_first and a["kind"] == "ignored")
    await sim.messaging.send(ADA, "after eve")
    assert await reply_seen(sim, ADA, 2) == ["echo: hello", "echo: after eve"]
    assert [x for x in sim.inbox(EVE) if x["type"] in ("message", "chatstate")] == []
    assert not any(x["type"] == "receipt" and x["receipt"] == "read" for x in sim.inbox(EVE))

    # legacy allowedUsers, used only when there are no trusted contacts, with any spelling.
    channel.set_policy(AccessPolicy((), ["0033 6 12 34 56 78"]))
    await sim.messaging.send(EVE, "now?")
    assert await reply_seen(sim, EVE) == ["echo: now?"]
    await sim.messaging.send(ADA, "and me?")  # Ada is not on the legacy list
    await sim.messaging.send(EVE, "again")
    assert await reply_seen(sim, EVE, 2) == ["echo: now?", "echo: again"]
    assert texts_received(sim, ADA) == ["echo: hello", "echo: after eve"]

    # both lists empty: nobody reaches the agent, and the status says so.
    empty = AccessPolicy()
    assert empty.nobody_can_reach_agent and "Nobody" in empty.status
    channel.set_policy(empty)
    ignored = await sim.messaging.send(EVE, "hello?")
    await channel.wait_activity(lambda a: a["message_id"] == ignored and a["reason"] == "not_allowed")
    channel.set_policy(AccessPolicy((), [EVE]))
    await sim.messaging.send(EVE, "last")
    assert await reply_seen(sim, EVE, 3) == ["echo: now?", "echo: again", "echo: last"]


async def test_a_lid_addressed_sender_is_matched_to_the_trusted_phone_number(
    sim: Wasim, make_channel: MakeChannel
) -> None:
    channel = await make_channel(sim, trusted_contacts=(TrustedContact.parse(ADA, "write"),))
    await link(channel, sim)
    sim.add_contact(ADA, "Ada", lid="987654321012345")
    await sim.messaging.send(ADA, "via my lid", lid_addressed=True)
    assert await reply_seen(sim, ADA) == ["echo: via my lid"]


async def test_only_text_is_processed_status_and_own_messages_are_ignored(
    sim: Wasim, make_channel: MakeChannel
) -> None:
    seen: list[str] = []

    async def record(message: InboundText) -> str:
        seen.append(message.text)
        return "ok"

    channel = await make_channel(sim, handler=record, trusted_contacts=(TrustedContact.parse(ADA, "write"),))
    await link(channel, sim)
    sim.add_contact(ADA, "Ada")
    kinds = ("image", "video", "audio", "document", "sticker", "location", "contact", "reaction", "poll", "revoke")
    ids = [await sim.messaging.send(ADA, "caption", kind=kind) for kind in kinds]
    ids.append(await sim.messaging.send(ADA, "my status", status=True))
    ids.append(await sim.messaging.send("self", "written on my phone", chat=ADA))
    ids.append(await sim.messaging.send(ADA, "   "))  # empty text
    ids.append(await sim.messaging.send(ADA, "the only text", kind="extended_text"))
    await reply_seen(sim, ADA)
    for message_id in ids:  # every message reached the channel and was decided on
        await channel.wait_activity(lambda a, i=message_id: a["message_id"] == i)
    reasons = [next(a for a in channel.activity if a["message_id"] == i).get("reason") for i in ids]
    assert reasons == [
        "media", "media", "media", "media", "media", "location", "contact", "reaction", "poll", "protocol",
        "status_broadcast", "from_me", "empty_text", None,
    ]  # fmt: skip
    assert seen == ["the only text"]


async def test_agent_errors_become_an_apology_and_typing_stops(sim: Wasim, make_channel: MakeChannel) -> None:
    async def broken(message: InboundText) -> str:
        raise RuntimeError("model exploded")

    channel = await make_channel(sim, handler=broken, trusted_contacts=(TrustedContact.parse(ADA, "write"),))
    await link(channel, sim)
    sim.add_contact(ADA, "Ada")
    await sim.messaging.send(ADA, "hi")
    assert await reply_seen(sim, ADA) == [ERROR_REPLY]
    assert inbox_sequence(sim, ADA) == ["composing", ERROR_REPLY, "paused"]


async def test_long_replies_arrive_whole_and_slow_agents_keep_typing(sim: Wasim, make_channel: MakeChannel) -> None:
    # > 100 KiB on the pipe, yet one message: under WhatsApp's 65,536 characters (longer replies go
    # out in parts: test_reply_parts_e2e.py)
    long_reply = "".join(f"{i:04d} ✓✓✓✓✓✓✓✓ ünïcödé\n" for i in range(2900))
    assert len(long_reply.encode()) > 100 * 1024 and len(long_reply) < 65_536

    async def slow(message: InboundText) -> str:
        await asyncio.sleep(1.2)
        return long_reply

    channel = await make_channel(
        sim, handler=slow, typing_refresh_seconds=0.5, trusted_contacts=(TrustedContact.parse(ADA, "write"),)
    )
    await link(channel, sim)
    sim.add_contact(ADA, "Ada")
    await sim.messaging.send(ADA, "write me an essay")
    assert await reply_seen(sim, ADA) == [long_reply]
    sequence = inbox_sequence(sim, ADA)
    assert sequence[-2:] == [long_reply, "paused"]
    assert sequence[:-2].count("composing") >= 2, "typing is refreshed while the agent works"


async def test_one_chat_in_order_different_chats_concurrently(sim: Wasim, make_channel: MakeChannel) -> None:
    running: set[str] = set()
    overlap: list[tuple[str, ...]] = []

    async def handler(message: InboundText) -> str:
        running.add(message.chat_jid + message.text)
        overlap.append(tuple(sorted(running)))
        await asyncio.sleep(0.3)
        running.discard(message.chat_jid + message.text)
        return f"done {message.text}"

    trusted = (TrustedContact.parse(ADA, "write"), TrustedContact.parse(GRACE, "write"))
    channel = await make_channel(sim, handler=handler, trusted_contacts=trusted)
    await link(channel, sim)
    sim.add_contact(ADA, "Ada")
    sim.add_contact(GRACE, "Grace")
    for i in range(3):
        await sim.messaging.send(ADA, f"a{i}")
    await sim.messaging.send(GRACE, "g0")
    assert await reply_seen(sim, ADA, 3) == ["done a0", "done a1", "done a2"]
    assert await reply_seen(sim, GRACE) == ["done g0"]
    assert all(sum(1 for r in o if r.startswith("49")) <= 1 for o in overlap), "Ada's messages never overlap"
    assert any(len(o) == 2 for o in overlap), "Ada's and Grace's chats ran at the same time"


async def test_a_phone_that_asks_for_a_retry_gets_the_reply_again(sim: Wasim, make_channel: MakeChannel) -> None:
    # Baileys answers a retry receipt by re-encrypting what we sent, which it reads back through
    # getMessage from our store: without it the phone would show "Waiting for this message".
    channel = await make_channel(sim, trusted_contacts=(TrustedContact.parse(ADA, "write"),))
    await link(channel, sim)
    sim.add_contact(ADA, "Ada")
    await sim.messaging.send(ADA, "first")
    assert await reply_seen(sim, ADA) == ["echo: first"]
    sim.messaging.fail_next_decrypt.add(ADA[1:])
    since = sim.events.last_seq
    await sim.messaging.send(ADA, "second")
    await sim.events.wait_for("decrypt.failed", since=since)
    # The resend arrives after typing was already cleared.
    assert await reply_seen(sim, ADA, 2, typing=False) == ["echo: first", "echo: second"]


async def test_a_burst_from_a_new_contact_is_answered_in_order_and_our_replies_are_not_handed_back(
    sim: Wasim, make_channel: MakeChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Baileys reports every message it sends back as one of ours; Python would only drop them, so
    # the sidecar leaves them out: one line less per reply (issue #18). Incoming ones still arrive.
    from cortask.channels.whatsapp.pipeline import ReplyPipeline

    arrived: list[tuple[bool, str]] = []
    arrive = ReplyPipeline.arrive

    async def recording(pipeline: ReplyPipeline, raw: Any, upsert_type: str) -> None:
        key = raw.get("key") or {}
        arrived.append((bool(key.get("fromMe")), str(key.get("id"))))
        await arrive(pipeline, raw, upsert_type)

    monkeypatch.setattr(ReplyPipeline, "arrive", recording)
    channel = await make_channel(sim, trusted_contacts=(TrustedContact.parse(ADA, "write"),))
    await link(channel, sim)
    sim.add_contact(ADA, "Ada")
    for n in range(10):  # a new contact: the first ones also teach Baileys her LID
        await sim.messaging.send(ADA, f"hello {n}")
    # in order, too: Baileys handles messages concurrently, so a message that waits for a lookup
    # could be overtaken by the next one of the chat unless the sidecar keeps a chat's order
    assert await reply_seen(sim, ADA, 10) == [f"echo: hello {n}" for n in range(10)]
    await asyncio.sleep(0.5)  # an echo would come right after its send
    assert [mine for mine, _ in arrived] == [False] * 10, arrived
