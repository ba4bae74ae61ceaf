"""Approving strangers (issue #14), end to end: the service, the real sidecar and Baileys, and
wasim. With approvals on, a stranger's first message is held: the owner's own chat gets exactly
one notice with a code, the stranger's phone shows nothing (no reply, no typing, no read
receipt); `/approve CODE` answers the held message once; `/reject CODE` and an expired code answer
nothing, and a rejected number is muted. The page's buttons are the same actions (the API here;
test_ui_owner drives them in Chromium)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from testkit.channel import link, reply_seen, serving_app, texts_received

from cortask.app.actions import CortaskApp
from cortask.app.models import ApprovalIn, ContactIn, SettingsPatch
from wasim.server.app import DEFAULT_PHONE, Wasim

pytestmark = pytest.mark.e2e

OWN = "+" + DEFAULT_PHONE
ADA = "+4915123456789"  # trusted
EVE = "+4915100000666"  # approved
MAL = "+4915100000777"  # rejected
OLD = "+4915100000888"  # lets the code expire
UI = "+4915100000999"  # approved through the API


@pytest.fixture
async def app(sim: Wasim, tmp_path: Path) -> AsyncIterator[CortaskApp]:
    async with serving_app(sim, tmp_path / "home") as app:
        yield app


def own_chat(sim: Wasim) -> list[str]:
    return [
        str(x["text"])
        for x in sim.inbox(OWN)
        if x["type"] == "message" and x.get("chat", "").startswith(DEFAULT_PHONE) and x.get("text") is not None
    ]


async def own_chat_has(sim: Wasim, count: int) -> list[str]:
    if len(own_chat(sim)) < count:
        await sim.events.wait_for("contact.received", lambda e: len(own_chat(sim)) >= count, timeout=30)
    return own_chat(sim)


async def ask(sim: Wasim, text: str) -> str:
    before = len(own_chat(sim))
    await sim.messaging.send("self", text, chat=OWN)
    return (await own_chat_has(sim, before + 1))[-1]


def seen_by(sim: Wasim, phone: str) -> list[dict[str, object]]:
    """What the account showed `phone`: messages, typing, read receipts (not delivery receipts)."""
    return [x for x in sim.inbox(phone) if not (x["type"] == "receipt" and x.get("receipt") == "inactive")]


async def held(sim: Wasim, app: CortaskApp, phone: str, text: str) -> str:
    """`phone` writes; the message is held and the owner told: returns the code of the notice."""
    channel = app.service.channel
    assert channel is not None
    before = len(own_chat(sim))
    message_id = await sim.messaging.send(phone, text)
    entry = await channel.wait_activity(lambda a: a["message_id"] == message_id)
    assert entry["kind"] == "held", entry
    notice = (await own_chat_has(sim, before + 1))[-1]
    assert notice.startswith(f"Someone new wrote: {phone}") and text.splitlines()[0] in notice, notice
    found = re.search(r"/approve ([A-Z0-9]{6})\b", notice)
    assert found, notice
    return found.group(1)


async def test_strangers_wait_for_the_owner(sim: Wasim, app: CortaskApp) -> None:
    for phone, name in ((ADA, "Ada"), (EVE, "Eve"), (MAL, "Mal"), (OLD, "Old"), (UI, "Una")):
        sim.add_contact(phone, name)
    channel = app.service.channel
    assert channel is not None
    await link(channel, sim)
    await app.add_contact(ContactIn(phone=ADA, name="Ada"))

    # Off (the default): a stranger is ignored silently, and nobody is told.
    message_id = await sim.messaging.send(EVE, "hello?")
    assert (await channel.wait_activity(lambda a: a["message_id"] == message_id))["kind"] == "ignored"

    await app.update_settings(SettingsPatch(approvals=True, self_chat=True))
    code = await held(sim, app, EVE, "hello there\nI'm Eve")
    # Writing again while waiting: held, no second notice.
    notices = len(own_chat(sim))
    again = await sim.messaging.send(EVE, "anyone?")
    assert (await channel.wait_activity(lambda a: a["message_id"] == again))["kind"] == "held"
    await asyncio.sleep(0.5)
    assert len(own_chat(sim)) == notices
    # The stranger's phone shows nothing: no reply, no typing, no read receipt (only the delivery
    # receipt every WhatsApp device sends by itself, "inactive", which says nobody read it).
    assert seen_by(sim, EVE) == []
    assert [a.code for a in await app.approvals()] == [code]

    # /approve answers the held message, once.
    answer = await ask(sim, f"/approve {code.lower()}")
    assert answer.startswith(f"Approved: Eve ({EVE}) has write access")
    assert await reply_seen(sim, EVE, 1) == ["Echo: hello there\nI'm Eve"]
    assert {c.phone: c.permission for c in await app.contacts()}[EVE] == "write"
    assert (await ask(sim, f"/approve {code}")).startswith(f"The request {code} was approved before")
    await asyncio.sleep(0.5)
    assert texts_received(sim, EVE) == ["Echo: hello there\nI'm Eve"]
    assert await app.approvals() == []

    # /reject: nothing is answered, and the number is muted (no new notice).
    code = await held(sim, app, MAL, "buy my stuff")
    assert (await ask(sim, f"/reject {code}")).startswith("Rejected:")
    notices = len(own_chat(sim))
    again = await sim.messaging.send(MAL, "hello??")
    assert (await channel.wait_activity(lambda a: a["message_id"] == again))["kind"] == "ignored"
    await asyncio.sleep(0.5)
    assert len(own_chat(sim)) == notices and seen_by(sim, MAL) == []

    # An expired code answers nothing.
    await app.update_settings(SettingsPatch(approval_hours=1 / 3600))  # a second
    code = await held(sim, app, OLD, "too late?")
    await asyncio.sleep(1.5)
    assert (
        await ask(sim, f"/approve {code}")
    ) == f"The code {code} has expired: nothing was answered. They can write again."
    await asyncio.sleep(0.5)
    assert seen_by(sim, OLD) == []

    # The page's Approve is the same action: read access, the held message gets the read-only reply.
    await app.update_settings(SettingsPatch(approval_hours=24))
    code = await held(sim, app, UI, "via the page")
    contact = await app.approve(code, ApprovalIn(permission="read"))
    assert contact.permission == "read"
    assert await reply_seen(sim, UI, 1, typing=False) == ["You have read-only access."]
    # A /approve from a write contact is text for the agent.
    assert await _answer(sim, ADA, "/approve ABCDEF") == "Echo: /approve ABCDEF"
    kinds = [(e["kind"], e.get("command")) for e in channel.activity if e["kind"] == "command"]
    assert ("command", "approve") in kinds and ("command", "reject") in kinds


async def _answer(sim: Wasim, phone: str, text: str) -> str:
    before = texts_received(sim, phone)
    await sim.messaging.send(phone, text)
    return (await reply_seen(sim, phone, len(before) + 1))[-1]
