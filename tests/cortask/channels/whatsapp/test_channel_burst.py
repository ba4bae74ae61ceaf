"""Issue #4: contacts who write in a burst get every reply, and can decrypt each one.

Baileys rc14's own locking lets the decryption of a contact's next message and the encryption of
our reply overwrite each other's Signal session update (sidecar/signal-sessions.mjs). The contact
then receives replies under a message counter it already used and cannot decrypt them; it asks
for a retry, so most replies arrive in the end, but only after failed decryptions. So these tests
count the failed decryptions and retry requests, not only the replies.
"""

from __future__ import annotations

import pytest
from testkit.channel import MakeChannel, link, texts_received

from cortask.contacts.access import TrustedContact
from wasim.server.app import Wasim

pytestmark = pytest.mark.e2e

BURST = 20
CONTACTS = {"+4915123456789": "Ada", "+447911123456": "Grace", "+14155550123": "Linus"}


async def _burst_and_replies(sim: Wasim, make_channel: MakeChannel, phones: list[str], *, lid: bool) -> int:
    """Each of `phones` writes BURST messages at once, interleaved with the others; returns the
    event mark from before the burst once every reply has arrived."""
    trusted = tuple(TrustedContact.parse(p, "write", name=CONTACTS[p]) for p in phones)
    # No pacing: replies go out while the contact's later messages are still being decrypted,
    # the overlap that used to lose session updates (and the tests stay short).
    channel = await make_channel(sim, trusted_contacts=trusted, pacing=None)
    await link(channel, sim)
    for phone in phones:
        sim.add_contact(phone, CONTACTS[phone])
    # A first exchange establishes the sessions, as in a conversation that is already going.
    for phone in phones:
        await sim.messaging.send(phone, "hello", lid_addressed=lid)
    await _replies(sim, phones, 1)

    mark = sim.events.last_seq
    for i in range(BURST):
        for phone in phones:
            await sim.messaging.send(phone, f"burst {i}", lid_addressed=lid)
    await _replies(sim, phones, 1 + BURST)
    return mark


async def _replies(sim: Wasim, phones: list[str], count: int) -> None:
    def done() -> bool:
        return all(len(texts_received(sim, p)) >= count for p in phones)

    if not done():
        await sim.events.wait_for("contact.received", lambda e: done(), timeout=90)


def _failures(sim: Wasim, since: int) -> list[str]:
    failed = [
        f"{e.data['contact']} could not decrypt {e.data['id']}: {e.data['error']}"
        for e in sim.events.since(since, "decrypt.failed")
    ]
    # Baileys fetches a key bundle again only when a session went missing or the contact asked
    # for a retry; the sessions all exist before the burst.
    refetched = [f"key bundles fetched again for {e.data['jids']}" for e in sim.events.since(since, "keys.fetched")]
    return failed + refetched


async def test_a_contact_writing_twenty_messages_at_once_gets_every_reply_decryptable(
    sim: Wasim, make_channel: MakeChannel
) -> None:
    ada = "+4915123456789"
    mark = await _burst_and_replies(sim, make_channel, [ada], lid=False)
    assert texts_received(sim, ada) == ["echo: hello"] + [f"echo: burst {i}" for i in range(BURST)]
    assert _failures(sim, mark) == []


async def test_three_contacts_writing_bursts_at_once_get_every_reply_decryptable(
    sim: Wasim, make_channel: MakeChannel
) -> None:
    phones = list(CONTACTS)
    mark = await _burst_and_replies(sim, make_channel, phones, lid=True)
    for phone in phones:
        # Each chat in order, one at a time; the chats concurrently.
        assert texts_received(sim, phone) == ["echo: hello"] + [f"echo: burst {i}" for i in range(BURST)]
    assert _failures(sim, mark) == []
