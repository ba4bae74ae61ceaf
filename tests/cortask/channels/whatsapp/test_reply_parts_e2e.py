"""Long replies through the real sidecar and Baileys to wasim: in parts, in order, each part under
its own id, and after a sidecar killed between parts only the missing parts are sent."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from testkit.channel import MakeChannel, link, texts_received, wait_state

from cortask.channels.whatsapp.inbound import InboundText
from cortask.channels.whatsapp.pacing import PacingPolicy
from cortask.channels.whatsapp.parts import split_reply, utf16_length
from cortask.channels.whatsapp.state import ConnectionState
from cortask.contacts.access import TrustedContact
from cortask.store import AsyncStore
from cortask.store_journal import StoreJournal
from wasim.server.app import Wasim

pytestmark = pytest.mark.e2e

ADA = "+4915123456789"
TRUSTED = (TrustedContact.parse(ADA, "write", name="Ada"),)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    async with await AsyncStore.open(tmp_path / "cortask.db") as opened:
        yield opened


async def _received(sim: Wasim, count: int, timeout: float = 60) -> list[str]:
    if len(texts_received(sim, ADA)) < count:
        await sim.events.wait_for(
            "contact.received", lambda e: len(texts_received(sim, ADA)) >= count, since=0, timeout=timeout
        )
    return texts_received(sim, ADA)


async def test_a_reply_longer_than_whatsapp_takes_arrives_in_parts_in_order(
    store: AsyncStore, sim: Wasim, make_channel: MakeChannel
) -> None:
    sentence = "Здравствуйте, this is a long answer with emoji 👍🏽 and 中文. "
    long_reply = "\n\n".join(sentence * 300 for _ in range(10))  # about 180,000 characters

    async def verbose(message: InboundText) -> str:
        return long_reply

    channel = await make_channel(sim, verbose, ledger=StoreJournal(store), trusted_contacts=TRUSTED)
    await link(channel, sim)
    sim.add_contact(ADA, "Ada")
    await sim.messaging.send(ADA, "tell me everything")
    expected = split_reply(long_reply, 65_536)
    assert len(expected) == 4 and all(utf16_length(part) <= 65_536 for part in expected)
    assert await _received(sim, 4) == expected
    await asyncio.sleep(1)  # the last part's activity entry follows its arrival
    ids = [a["message_id"] for a in channel.activity if a["kind"] == "replied"]
    assert len(ids) == len(set(ids)) == 4  # each part under its own id
    # One reply, timed once: from the message's arrival until its last part went out.
    latency = channel.metrics.reply_latency.collect()[0].samples
    assert next(s.value for s in latency if s.name.endswith("_count")) == 1
    await asyncio.sleep(1)
    assert len(texts_received(sim, ADA)) == 4


async def test_a_sidecar_killed_between_parts_resends_only_the_missing_parts(
    store: AsyncStore, sim: Wasim, make_channel: MakeChannel
) -> None:
    paragraphs = [f"Part {n}: " + "words and more words. " * 8 for n in range(10)]
    reply = "\n\n".join(paragraphs)

    async def agent(message: InboundText) -> str:
        return reply

    # A smaller part size (the setting), and one part a second after a burst of two: the kill
    # lands between parts.
    channel = await make_channel(
        sim, agent, ledger=StoreJournal(store), trusted_contacts=TRUSTED, max_part_chars=200,
        pacing=PacingPolicy(rate_per_second=2.0, burst=2, jitter_seconds=0.0),
    )  # fmt: skip
    await link(channel, sim)
    sim.add_contact(ADA, "Ada")
    expected = split_reply(reply, 200)
    assert expected == [p.strip() for p in paragraphs]
    await sim.messaging.send(ADA, "the long story")
    await _received(sim, 4)
    pid = channel.sidecar_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await wait_state(channel, ConnectionState.RECONNECTING, ConnectionState.CONNECTING)
    assert await _received(sim, len(expected)) == expected
    await wait_state(channel, ConnectionState.OPEN)
    await asyncio.sleep(2)
    assert texts_received(sim, ADA) == expected  # each part exactly once, in order
    account = (channel.account or {})["id"]
    assert await store.journal.pending(account) == [] and await store.outbox.pending() == []
