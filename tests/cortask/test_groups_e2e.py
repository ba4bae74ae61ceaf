"""Groups that need a mention (issue #14), end to end: the service, the real sidecar and Baileys,
and wasim, whose contacts post in a group with the account, @-mention it (by its phone JID and by
its LID) and reply to one of its messages.

Mention mode (the default once groups are on): mentioned → one reply, quoting the message; not
mentioned → nothing; replied-to → one reply; a stranger mentioning the account → nothing.
`always` → one reply per trusted message; an allow-list of groups → nothing elsewhere.

Each reply is checked where a person sees it: in every member's phone, in the group, quoting
the message it answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from testkit.channel import link, serving_app

from cortask.app.actions import CortaskApp
from cortask.app.models import ContactIn, ContactPatch, SettingsPatch
from wasim.server.app import DEFAULT_PHONE, Wasim

pytestmark = pytest.mark.e2e

ADA = "+4915123456789"  # write
EVE = "+4915100000666"  # a stranger in the same group
GROUP = "Book club"
OTHER = "Chess club"


@pytest.fixture
async def app(sim: Wasim, tmp_path: Path) -> AsyncIterator[CortaskApp]:
    async with serving_app(sim, tmp_path / "home") as app:
        yield app


def posts(sim: Wasim, group_jid: str, phone: str = ADA) -> list[dict[str, Any]]:
    """What the account posted in the group, as a member's phone shows it."""
    return [x for x in sim.inbox(phone) if x["type"] == "message" and x.get("chat") == group_jid]


async def post(sim: Wasim, app: CortaskApp, sender: str, text: str, group: str = GROUP, **how: Any) -> dict[str, Any]:
    """`sender` posts in the group; returns the channel's verdict on it (its activity entry)."""
    channel = app.service.channel
    assert channel is not None
    message_id = await sim.messaging.send(sender, text, group=group, **how)
    entry = await channel.wait_activity(
        lambda a: a["message_id"] == message_id and a["kind"] in ("received", "ignored")
    )
    return {**entry, "id": message_id}


async def one_reply(sim: Wasim, group_jid: str, before: int, quoting: str, text: str) -> dict[str, Any]:
    """Exactly one more post from the account in the group: `text`, quoting message `quoting`."""
    await sim.events.wait_for("contact.received", lambda e: len(posts(sim, group_jid)) > before, timeout=30)
    await asyncio.sleep(0.5)  # a second reply would have come by now
    got = posts(sim, group_jid)
    assert len(got) == before + 1, got
    assert (got[-1]["text"], got[-1]["quoted"]) == (text, quoting)
    return got[-1]


async def test_groups_answer_when_mentioned_or_replied_to_or_always(sim: Wasim, app: CortaskApp) -> None:
    sim.add_contact(ADA, "Ada")
    sim.add_contact(EVE, "Eve")
    channel = app.service.channel
    assert channel is not None
    await link(channel, sim)
    group = sim.create_group(GROUP, [ADA, EVE])
    other = sim.create_group(OTHER, [ADA])
    account = sim.state.account(DEFAULT_PHONE)
    assert account is not None
    own_lid = f"{account.lid}@lid"
    await app.add_contact(ContactIn(phone=ADA, name="Ada", permission="write"))
    overview = await app.update_settings(SettingsPatch(answer_groups=True))
    assert overview.settings.group_mode == "mention"  # the default

    # Not mentioned: nothing.
    quiet = await post(sim, app, ADA, "lovely weather")
    assert (quiet["kind"], quiet["reason"]) == ("ignored", "not_mentioned")
    # Mentioned by phone number, then by LID: one quoted reply each.
    first = await post(sim, app, ADA, f"@{DEFAULT_PHONE} what's next?", mentions=[DEFAULT_PHONE])
    assert first["kind"] == "received"
    reply = await one_reply(sim, group.jid, 0, first["id"], f"Echo: @{DEFAULT_PHONE} what's next?")
    seen = [(x["id"], x["text"], x["quoted"]) for x in posts(sim, group.jid, EVE)]
    assert seen == [(reply["id"], reply["text"], reply["quoted"])]  # every member sees it
    second = await post(sim, app, ADA, "@agent and after that?", mentions=[own_lid])
    assert second["kind"] == "received"
    await one_reply(sim, group.jid, 1, second["id"], "Echo: @agent and after that?")
    # A reply to one of ours (no mention): one reply.
    replied = await post(sim, app, ADA, "thanks!", reply_to=reply["id"])
    assert replied["kind"] == "received"
    await one_reply(sim, group.jid, 2, replied["id"], "Echo: thanks!")
    # A reply to someone else's message is not a call.
    aside = await post(sim, app, ADA, "agreed", reply_to=quiet["id"])
    assert aside["reason"] == "not_mentioned"
    # A stranger mentioning the account: nothing (membership grants nothing).
    stranger = await post(sim, app, EVE, f"@{DEFAULT_PHONE} hello?", mentions=[DEFAULT_PHONE])
    assert (stranger["kind"], stranger["reason"]) == ("ignored", "not_allowed")

    # Always: one reply per trusted message, none for the stranger.
    overview = await app.update_settings(SettingsPatch(group_mode="always"))
    assert overview.settings.group_mode == "always"
    for n in range(3):
        entry = await post(sim, app, ADA, f"chatter {n}")
        assert entry["kind"] == "received"
        await one_reply(sim, group.jid, 3 + n, entry["id"], f"Echo: chatter {n}")
    assert (await post(sim, app, EVE, "me too"))["reason"] == "not_allowed"
    # Commands are never read in a group, even an admin's: the contact list is nobody else's business.
    await app.update_contact(ADA, ContactPatch(permission="admin"))
    command = await post(sim, app, ADA, "/contacts")
    await one_reply(sim, group.jid, 6, command["id"], "Echo: /contacts")
    await app.update_contact(ADA, ContactPatch(permission="write"))

    # An allow-list: only the groups on it.
    await app.update_settings(SettingsPatch(groups_allowed=[other.jid]))
    assert (await post(sim, app, ADA, "here?"))["reason"] == "group_not_listed"
    elsewhere = await post(sim, app, ADA, "and here?", group=OTHER)
    assert elsewhere["kind"] == "received"
    await one_reply(sim, other.jid, 0, elsewhere["id"], "Echo: and here?")
    await asyncio.sleep(0.5)
    assert len(posts(sim, group.jid)) == 7
