"""The owner in control from WhatsApp itself (issue #14), end to end: the service with its store,
the real sidecar and Baileys, and wasim, whose simulated phone is the account's owner writing in
their own chat ("Message yourself") or to someone else, and whose contacts write to the account.

Self-chat: off by default (nothing), on (exactly one reply per message, 50 for 50, never a reply
to a reply), the reply prefix, and the owner's messages to others never answered. Commands: each
one's effect as a user sees it, from the owner in self-chat and from an admin contact; a `write`
contact's `/allow` reaches the agent as text; a `read` contact's gets the read-only reply.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from testkit.channel import link, reply_seen, serving_app, texts_received

from cortask.app.actions import CortaskApp
from cortask.app.commands import HELP
from cortask.app.models import ContactIn, SettingsPatch
from cortask.store.models import session_id_for_chat
from wasim.server.app import DEFAULT_PHONE, Wasim

pytestmark = pytest.mark.e2e

OWN = "+" + DEFAULT_PHONE
OWN_CHAT = f"{DEFAULT_PHONE}@s.whatsapp.net"
ADA = "+4915123456789"  # write
BOB = "+4915199990000"  # admin
RUTH = "+4915177770000"  # read
NEW = "+4915166660000"  # allowed from WhatsApp


@pytest.fixture
async def app(sim: Wasim, tmp_path: Path) -> AsyncIterator[CortaskApp]:
    async with serving_app(sim, tmp_path / "home") as app:
        yield app


def own_chat(sim: Wasim) -> list[str]:
    """What the account sent to the owner's own chat: our replies there (the phone's inbox also
    gets copies of replies to others, in their chats; what the phone wrote itself is not in it)."""
    return [
        str(x["text"])
        for x in sim.inbox(OWN)
        if x["type"] == "message" and x.get("chat", "").startswith(DEFAULT_PHONE) and x.get("text") is not None
    ]


async def own_chat_reaches(sim: Wasim, count: int, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(own_chat(sim)) < count:
        assert time.monotonic() < deadline, f"the own chat has {own_chat(sim)}, wanted {count} messages"
        await asyncio.sleep(0.05)
    return own_chat(sim)


async def ask(sim: Wasim, text: str) -> str:
    """The owner writes in their own chat and gets exactly one answer."""
    before = own_chat(sim)
    await sim.messaging.send("self", text, chat=OWN)
    after = await own_chat_reaches(sim, len(before) + 1)
    await asyncio.sleep(0.3)  # a second answer would have come by now
    assert own_chat(sim) == after, f"answered twice: {after[len(before) :]}"
    return after[-1]


async def answer_to(sim: Wasim, phone: str, text: str) -> str:
    before = texts_received(sim, phone)
    await sim.messaging.send(phone, text)
    got = await reply_seen(sim, phone, len(before) + 1, typing=False)
    await asyncio.sleep(0.3)
    assert texts_received(sim, phone) == got, f"{phone} answered twice"
    return got[-1]


async def nothing_for(sim: Wasim, app: CortaskApp, phone: str, text: str) -> dict[str, Any]:
    """`phone` writes and gets nothing; returns the activity entry that says why."""
    before = texts_received(sim, phone)
    message_id = await sim.messaging.send(phone, text)
    channel = app.service.channel
    assert channel is not None
    entry = await channel.wait_activity(
        lambda a: a["message_id"] == message_id and a["kind"] in ("ignored", "skipped", "replied")
    )
    await asyncio.sleep(0.5)
    assert texts_received(sim, phone) == before, f"{phone} got an answer to {text!r}"
    return entry


async def linked(app: CortaskApp, sim: Wasim) -> None:
    for phone, name in ((ADA, "Ada"), (BOB, "Bob"), (RUTH, "Ruth"), (NEW, "Neo")):
        sim.add_contact(phone, name)
    channel = app.service.channel
    assert channel is not None
    await link(channel, sim)


async def test_self_chat_off_by_default_then_one_reply_per_message_and_never_to_others(
    sim: Wasim, app: CortaskApp
) -> None:
    await linked(app, sim)
    await app.add_contact(ContactIn(phone=ADA, name="Ada"))
    channel = app.service.channel
    assert channel is not None

    # Off (the default): the owner's note to self is left alone.
    message_id = await sim.messaging.send("self", "note to self", chat=OWN)
    entry = await channel.wait_activity(lambda a: a["message_id"] == message_id)
    assert entry["kind"] == "ignored" and entry["reason"] == "from_me"
    await asyncio.sleep(0.5)
    assert own_chat(sim) == []

    # On, with a prefix: one marked reply each.
    overview = await app.update_settings(SettingsPatch(self_chat=True, self_chat_prefix="🤖 "))
    assert overview.settings.self_chat and overview.settings.self_chat_prefix == "🤖 "
    assert await ask(sim, "hello me") == "🤖 Echo: hello me"

    # From another of the owner's devices (WhatsApp Desktop, say): answered the same way.
    before = own_chat(sim)
    await sim.messaging.send("self", "from my laptop", chat=OWN, from_device=7)
    assert await own_chat_reaches(sim, len(before) + 1) == [*before, "🤖 Echo: from my laptop"]

    # 50 messages in a burst: exactly 50 replies, one per message, and no reply to a reply.
    start = len(own_chat(sim))
    texts = [f"burst {i}" for i in range(50)]
    for text in texts:
        await sim.messaging.send("self", text, chat=OWN)
    await own_chat_reaches(sim, start + 50, timeout=90)
    await asyncio.sleep(2)
    seen = own_chat(sim)[start:]
    assert seen == [f"🤖 Echo: {t}" for t in texts]  # one each, in order, and no reply to a reply

    # The owner writing to Ada (a trusted contact) is never answered, in either chat.
    ada_before = texts_received(sim, ADA)
    own_before = own_chat(sim)
    message_id = await sim.messaging.send("self", "hi Ada, it's me", chat=ADA)
    entry = await channel.wait_activity(lambda a: a["message_id"] == message_id)
    assert entry["kind"] == "ignored" and entry["reason"] == "from_me"
    await asyncio.sleep(0.5)
    assert texts_received(sim, ADA) == ada_before  # nothing from the agent
    assert own_chat(sim) == own_before

    # Off again: nothing.
    await app.update_settings(SettingsPatch(self_chat=False))
    before = own_chat(sim)
    message_id = await sim.messaging.send("self", "anyone?", chat=OWN)
    await channel.wait_activity(lambda a: a["message_id"] == message_id)
    await asyncio.sleep(0.5)
    assert own_chat(sim) == before


async def test_admin_commands_from_self_chat_and_from_an_admin_contact(sim: Wasim, app: CortaskApp) -> None:
    await linked(app, sim)
    await app.add_contact(ContactIn(phone=ADA, name="Ada", permission="write"))
    await app.add_contact(ContactIn(phone=BOB, name="Bob", permission="admin"))
    await app.add_contact(ContactIn(phone=RUTH, name="Ruth", permission="read"))
    await app.update_settings(SettingsPatch(self_chat=True))
    channel = app.service.channel
    assert channel is not None

    # /help, and an unknown command gets the help, not the agent.
    assert await ask(sim, "/help") == HELP
    unknown = await ask(sim, "/frobnicate now")
    assert unknown.startswith("There is no command /frobnicate.") and HELP in unknown

    # /allow: the new number gets agent replies from then on.
    entry = await nothing_for(sim, app, NEW, "before")
    assert entry["reason"] == "not_allowed"
    assert await ask(sim, "/allow +49 151 6666 0000 write Neo") == "Added: Neo (+49 151 6666 0000) has write access."
    assert await answer_to(sim, NEW, "after") == "Echo: after"
    assert await ask(sim, "/allow +4915166660000 read") == "Changed: Neo (+49 151 6666 0000) has read access."
    assert await answer_to(sim, NEW, "now?") == "You have read-only access."
    bad = await ask(sim, "/allow")
    assert bad.startswith("/allow needs a phone number. Send /allow +49")

    # /contacts lists everyone, with their permission.
    listed = await ask(sim, "/contacts")
    assert listed.splitlines()[0] == "Trusted contacts (4):"
    assert "Ada +4915123456789: write" in listed and "Neo +49 151 6666 0000: read" in listed

    # /deny: the number is ignored again.
    assert (
        await ask(sim, "/deny +49 151 6666 0000")
        == "+49 151 6666 0000 is no longer a trusted contact: their messages are ignored."
    )
    assert (await nothing_for(sim, app, NEW, "still there?"))["reason"] == "not_allowed"
    assert (await ask(sim, "/deny +4915166660000")).endswith("is not a trusted contact")

    # /pause: nobody is answered (commands still are) until /resume.
    assert (await ask(sim, "/pause")).startswith("Paused:")
    skipped = await nothing_for(sim, app, ADA, "are you there?")
    assert skipped["kind"] == "skipped" and skipped["reason"] == "paused"
    status = await ask(sim, "/status")
    assert "Answers are paused" in status and "Agent: echo." in status and "Last message:" in status
    assert (await app.overview()).settings.answers_paused  # the same setting the page shows
    assert await ask(sim, "/resume") == "Answering again."
    assert await answer_to(sim, ADA, "and now?") == "Echo: and now?"
    assert "Answering: yes" in await ask(sim, "/status")

    # /agent: which agent answers.
    assert (await ask(sim, "/agent")).startswith("Agent: echo.")

    # /reset: this chat's history is forgotten.
    assert await ask(sim, "remember this") == "Echo: remember this"
    store = app.service.store
    assert store is not None
    assert await store.sessions.history(session_id_for_chat(OWN_CHAT))
    assert (await ask(sim, "/reset")).startswith("Forgotten: this chat's conversation history")
    assert await store.sessions.history(session_id_for_chat(OWN_CHAT)) == []

    # An admin contact's command works in their own chat.
    assert (await answer_to(sim, BOB, "/contacts")).startswith("Trusted contacts (3):")
    # A write contact's /allow reaches the agent as text and changes nothing.
    assert await answer_to(sim, ADA, "/allow +15550009999 admin") == "Echo: /allow +15550009999 admin"
    assert "+15550009999" not in {c.phone for c in await app.contacts()}
    # A read contact's /status gets the read-only reply, as any message of theirs does.
    assert await answer_to(sim, RUTH, "/status") == "You have read-only access."

    # Every command is in the activity log with who sent it.
    commands = [(e["command"], e["sender"]) for e in channel.activity if e["kind"] == "command"]
    assert ("allow", "owner") in commands and ("deny", "owner") in commands and ("pause", "owner") in commands
    assert ("contacts", BOB) in commands
    assert ("unknown", "owner") in commands
    assert not any(sender == ADA for _, sender in commands)
    described = [a for a in await app.activity() if a.kind == "command"]
    assert described and described[0].label == "Command" and "From you, in your own chat." in described[0].sentence
