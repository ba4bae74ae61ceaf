"""wasim part 2, end to end: simulated contacts and real Baileys exchange Signal-encrypted messages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from testkit.baileys import BaileysDriver, link_device

from wasim.server.app import Wasim

pytestmark = pytest.mark.e2e

StartBaileys = Callable[..., Awaitable[BaileysDriver]]

ADA = "+4915123456789"
ADA_JID = "4915123456789@s.whatsapp.net"
GRACE = "+447700900123"


async def _linked(sim: Wasim, make_baileys: StartBaileys) -> BaileysDriver:
    client = await make_baileys()
    await link_device(sim, client)
    return client


async def _upsert_for(client: BaileysDriver, message_id: str, since: int = 0) -> dict[str, Any]:
    event = await client.wait(
        "upsert", lambda e: any(m["key"]["id"] == message_id for m in e["messages"]), since=since, timeout=15
    )
    message = next(m for m in event["messages"] if m["key"]["id"] == message_id)
    return {"type": event["type"], **message}


async def test_contact_texts_arrive_as_notify_with_sender_and_push_name(sim: Wasim, make_baileys: StartBaileys) -> None:
    client = await _linked(sim, make_baileys)
    contact = sim.add_contact(ADA, "Ada")
    plain = await sim.messaging.send(ADA, "hello from Ada")
    extended = await sim.messaging.send(ADA, "an extended hello", kind="extended_text")

    first = await _upsert_for(client, plain)
    second = await _upsert_for(client, extended)
    assert first["type"] == second["type"] == "notify"
    assert first["message"]["conversation"] == "hello from Ada"
    assert second["message"]["extendedTextMessage"]["text"] == "an extended hello"
    for m in (first, second):
        assert m["key"]["remoteJid"] == ADA_JID
        assert m["key"]["remoteJidAlt"] == contact.lid_jid
        assert m["key"]["fromMe"] is False
        assert m["pushName"] == "Ada"


async def test_every_message_kind_arrives_with_its_type_chat_and_direction(
    sim: Wasim, make_baileys: StartBaileys
) -> None:
    client = await _linked(sim, make_baileys)
    sim.add_contact(ADA, "Ada")
    # (what is sent) -> (the Message field Baileys reports, remoteJid, fromMe)
    table: list[tuple[dict[str, Any], str, str, bool]] = [
        ({"kind": "image", "text": "a photo"}, "imageMessage", ADA_JID, False),
        ({"kind": "video"}, "videoMessage", ADA_JID, False),
        ({"kind": "audio"}, "audioMessage", ADA_JID, False),
        ({"kind": "document"}, "documentMessage", ADA_JID, False),
        ({"kind": "sticker"}, "stickerMessage", ADA_JID, False),
        ({"kind": "location"}, "locationMessage", ADA_JID, False),
        ({"kind": "contact"}, "contactMessage", ADA_JID, False),
        ({"kind": "reaction", "text": "❤️"}, "reactionMessage", ADA_JID, False),
        ({"kind": "poll"}, "pollCreationMessageV3", ADA_JID, False),
        ({"kind": "revoke"}, "protocolMessage", ADA_JID, False),
        ({"kind": "text", "text": "my status", "status": True}, "conversation", "status@broadcast", False),
        (
            {"kind": "text", "text": "sent from my phone", "sender": "self", "chat": ADA},
            "conversation",
            ADA_JID,
            True,
        ),
    ]
    seen, expected = [], []
    for spec, field, remote_jid, from_me in table:
        sender = spec.pop("sender", ADA)
        message_id = await sim.messaging.send(sender, **spec)
        m = await _upsert_for(client, message_id)
        assert m["message"] is not None, (spec, m)
        seen.append((spec.get("kind"), field in m["message"], m["key"]["remoteJid"], m["key"]["fromMe"]))
        expected.append((spec.get("kind"), True, remote_jid, from_me))
    assert seen == expected


async def test_lid_addressed_message_has_the_lid_as_chat_and_the_phone_as_alternative(
    sim: Wasim, make_baileys: StartBaileys
) -> None:
    client = await _linked(sim, make_baileys)
    contact = sim.add_contact(ADA, "Ada", lid="987654321012345")
    m = await _upsert_for(client, await sim.messaging.send(ADA, "via lid", lid_addressed=True))
    assert m["key"]["remoteJid"] == "987654321012345@lid"
    assert m["key"]["remoteJidAlt"] == ADA_JID
    assert m["key"]["addressingMode"] == "lid"
    assert m["message"]["conversation"] == "via lid" and contact.lid == "987654321012345"


async def test_a_lid_addressed_message_can_withhold_the_phone_number(sim: Wasim, make_baileys: StartBaileys) -> None:
    client = await _linked(sim, make_baileys)
    sim.add_contact(ADA, "Ada", lid="987654321012345")
    sent = await sim.messaging.send(ADA, "who am I?", lid_addressed=True, withhold_phone=True)
    m = await _upsert_for(client, sent)
    assert m["key"]["remoteJid"] == "987654321012345@lid"
    assert not m["key"].get("remoteJidAlt")
    assert m["message"]["conversation"] == "who am I?"
    with pytest.raises(ValueError, match="set lid_addressed"):
        await sim.messaging.send(ADA, "x", withhold_phone=True)


async def _received(sim: Wasim, phone: str, text_count: int) -> list[dict[str, Any]]:
    await sim.events.wait_for(
        "contact.received",
        lambda e: (
            e.data["contact"] == phone.lstrip("+")
            and sum(1 for x in sim.inbox(phone) if x["type"] == "message") >= text_count
        ),
        timeout=15,
    )
    return [x for x in sim.inbox(phone) if x["type"] == "message"]


async def test_baileys_replies_decrypt_at_the_contact_with_and_without_a_session(
    sim: Wasim, make_baileys: StartBaileys
) -> None:
    client = await _linked(sim, make_baileys)
    sim.add_contact(ADA, "Ada")
    sim.add_contact(GRACE, "Grace")
    # Ada wrote first (Baileys has a session from her pkmsg); Grace never wrote (a key fetch is needed).
    await _upsert_for(client, await sim.messaging.send(ADA, "hi"))
    long_text = "Grüße, 世界 🌍🚀 " + "x" * (64 * 1024)
    texts = ["plain reply", "unicode: ☕ naïve façade 🌈👩‍💻", long_text]
    for text in texts:
        await client.command("send", jid=ADA_JID, text=text)
    await client.command("send", jid="447700900123@s.whatsapp.net", text="hello Grace, first contact")
    ada = await _received(sim, ADA, 3)
    grace = await _received(sim, GRACE, 1)
    assert [m["text"] for m in ada] == texts
    assert [m["text"] for m in grace] == ["hello Grace, first contact"]
    assert grace[0]["enc"] == "pkmsg"


async def test_chatstates_are_recorded_in_order(sim: Wasim, make_baileys: StartBaileys) -> None:
    client = await _linked(sim, make_baileys)
    sim.add_contact(ADA, "Ada")
    await _upsert_for(client, await sim.messaging.send(ADA, "are you there?"))
    await client.command("presence", type="composing", jid=ADA_JID)
    await client.command("send", jid=ADA_JID, text="yes")
    await client.command("presence", type="paused", jid=ADA_JID)
    await sim.events.wait_for("contact.chatstate", lambda e: e.data["state"] == "paused", timeout=10)
    sequence = [x.get("state") or x.get("text") for x in sim.inbox(ADA) if x["type"] in ("chatstate", "message")]
    assert sequence == ["composing", "yes", "paused"]


async def test_redelivered_message_arrives_again_with_the_same_id(sim: Wasim, make_baileys: StartBaileys) -> None:
    client = await _linked(sim, make_baileys)
    sim.add_contact(ADA, "Ada")
    message_id = await sim.messaging.send(ADA, "once or twice?")
    await _upsert_for(client, message_id)
    mark = client.mark()
    await sim.messaging.redeliver(message_id)
    again = await _upsert_for(client, message_id, since=mark)
    assert again["message"]["conversation"] == "once or twice?"


async def test_messages_sent_while_offline_arrive_after_login_as_append_in_order(
    sim: Wasim, make_baileys: StartBaileys
) -> None:
    client = await _linked(sim, make_baileys)
    sim.add_contact(ADA, "Ada")
    await _upsert_for(client, await sim.messaging.send(ADA, "while online"))
    since = sim.events.last_seq
    await client.command("end")
    await sim.events.wait_for("connection.closed", lambda e: e.data["role"] == "login", since=since)
    assert not sim.logged_in()
    ids = [await sim.messaging.send(ADA, f"offline {i}") for i in range(3)]
    mark = await client.connect(sim.url, sim.root_public_key)
    await client.wait_open(mark)
    arrived = [await _upsert_for(client, i, since=mark) for i in ids]
    assert [a["type"] for a in arrived] == ["append"] * 3
    order = [
        m["key"]["id"]
        for e in client.events[mark:]
        if e["event"] == "upsert"
        for m in e["messages"]
        if m["key"]["id"] in ids
    ]
    assert order == ids
    assert [a["message"]["conversation"] for a in arrived] == ["offline 0", "offline 1", "offline 2"]


async def test_bad_stanzas_from_a_client_get_whatsapps_error_replies_and_nothing_breaks(
    sim: Wasim, make_baileys: StartBaileys
) -> None:
    client = await _linked(sim, make_baileys)
    sim.add_contact(ADA, "Ada")
    await _upsert_for(client, await sim.messaging.send(ADA, "hi"))

    # A usync query without a user list: an iq error, which Baileys raises to its caller.
    bad_usync = {
        "tag": "iq",
        "attrs": {"to": "@s.whatsapp.net", "type": "get", "xmlns": "usync"},
        "content": [{"tag": "usync", "attrs": {"context": "message", "mode": "query"}, "content": []}],
    }
    try:
        await client.command("query", node=bad_usync)
        raise AssertionError("a malformed usync query was answered as if it were fine")
    except Exception as exc:  # DriverError carrying Baileys' Boom
        assert "bad-request" in str(exc)

    # A message to somebody who does not exist: a negative ack.
    since = sim.events.last_seq
    await client.command(
        "sendNode",
        node={
            "tag": "message",
            "attrs": {"id": "3EB0BAD00000000000001", "to": "19999999999@s.whatsapp.net", "type": "text"},
            "content": [{"tag": "enc", "attrs": {"v": "2", "type": "msg"}, "content": {"b64": "AAAA"}}],
        },
    )
    rejected = await sim.events.wait_for("message.rejected", since=since)
    assert rejected.data["why"] == "unknown recipient"

    # Ciphertext the contact cannot decrypt: the contact asks for a retry, as a phone does.
    since = sim.events.last_seq
    await client.command(
        "sendNode",
        node={
            "tag": "message",
            "attrs": {"id": "3EB0BAD00000000000002", "to": ADA_JID, "type": "text"},
            "content": [
                {
                    "tag": "participants",
                    "attrs": {},
                    "content": [
                        {
                            "tag": "to",
                            "attrs": {"jid": ADA_JID},
                            "content": [
                                {
                                    "tag": "enc",
                                    "attrs": {"v": "2", "type": "msg"},
                                    "content": {"b64": "M2dhcmJhZ2U="},
                                }
                            ],
                        }
                    ],
                }
            ],
        },
    )
    failed = await sim.events.wait_for("decrypt.failed", since=since)
    assert failed.data["id"] == "3EB0BAD00000000000002"

    # Both directions still work afterwards.
    await _upsert_for(client, await sim.messaging.send(ADA, "still here"))
    await client.command("send", jid=ADA_JID, text="me too")
    assert [m["text"] for m in await _received(sim, ADA, 1)] == ["me too"]


async def test_group_messages_arrive_with_the_participant_set(sim: Wasim, make_baileys: StartBaileys) -> None:
    client = await _linked(sim, make_baileys)
    sim.add_contact(ADA, "Ada")
    sim.add_contact(GRACE, "Grace")
    group = sim.create_group("Book club", [ADA, GRACE])
    posts = [(ADA, "first post"), (ADA, "second post"), (GRACE, "hello all")]
    arrived = [await _upsert_for(client, await sim.messaging.send(p, t, group="Book club")) for p, t in posts]
    assert [(a["key"]["remoteJid"], a["key"]["participant"], a["message"]["conversation"]) for a in arrived] == [
        (group.jid, ADA_JID, "first post"),
        (group.jid, ADA_JID, "second post"),
        (group.jid, "447700900123@s.whatsapp.net", "hello all"),
    ]
    assert all(a["key"]["fromMe"] is False and a["type"] == "notify" for a in arrived)


async def test_a_retry_receipt_from_baileys_gets_the_message_resent(sim: Wasim, make_baileys: StartBaileys) -> None:
    client = await _linked(sim, make_baileys)
    sim.add_contact(ADA, "Ada")
    await _upsert_for(client, await sim.messaging.send(ADA, "hi"))
    since = sim.events.last_seq
    message_id = await sim.messaging.send(ADA, "this one needs a retry", garble_first=True)
    retry = await sim.events.wait_for("retry.received", lambda e: e.data["id"] == message_id, since=since)
    assert retry.data["device"] == 2
    arrived = await client.wait(
        "upsert",
        lambda e: any(m["key"]["id"] == message_id and m.get("message") for m in e["messages"]),
        timeout=15,
    )
    texts = [m["message"].get("conversation") for m in arrived["messages"] if m["key"]["id"] == message_id]
    assert texts == ["this one needs a retry"]


async def test_a_receipt_the_device_never_acknowledged_comes_again_at_its_next_login(
    sim: Wasim, make_baileys: StartBaileys
) -> None:
    # As on WhatsApp, a receipt waits for the device's ack: a retry request lost with the
    # connection must not leave the contact without the message for good.
    client = await _linked(sim, make_baileys)
    sim.add_contact(ADA, "Ada")
    await _upsert_for(client, await sim.messaging.send(ADA, "hi"))
    send_receipt = sim.messaging.send_receipt

    async def lost_on_the_way(conn: Any, receipt: Any) -> None:
        if receipt.attrs.get("type") == "retry":
            conn.blackhole()  # the connection goes quiet before the request gets through
        await send_receipt(conn, receipt)

    sim.messaging.send_receipt = lost_on_the_way  # type: ignore[method-assign]
    sim.messaging.fail_next_decrypt.add(ADA[1:])
    since = sim.events.last_seq
    await client.command("send", jid=ADA_JID, text="can you read this?")
    failed = await sim.events.wait_for("decrypt.failed", since=since)
    sim.messaging.send_receipt = send_receipt  # type: ignore[method-assign]
    await client.command("end")
    requeued = await sim.events.wait_for("receipt.requeued", since=since)
    assert failed.data["id"] in requeued.data["ids"]
    mark = await client.connect(sim.url, sim.root_public_key)
    await client.wait_open(mark)
    again = await sim.events.wait_for("receipt.redelivered", since=since)
    assert failed.data["id"] in again.data["ids"]
