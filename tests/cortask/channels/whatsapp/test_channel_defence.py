"""The channel under attack, end to end (real sidecar, real Baileys, wasim, SQLite): a retry
request from another chat gets nothing, access is decided again when a queued message's turn
comes, and one sender's flood neither runs the agent past its limit nor delays other chats."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from testkit.channel import MakeChannel, link, texts_received

from cortask.channels.whatsapp.channel import READ_ONLY_REPLY
from cortask.channels.whatsapp.flood import PER_HOUR, PER_MINUTE, FloodPolicy
from cortask.channels.whatsapp.inbound import InboundText
from cortask.contacts.access import AccessPolicy, Permission, TrustedContact
from cortask.store import AsyncStore, JournalState
from cortask.store_journal import StoreJournal
from wasim.server.app import Wasim
from wasim.server.messaging import Messaging

pytestmark = pytest.mark.e2e

ADA, GRACE = "+4915123456789", "+447911123456"
BOTH = AccessPolicy([TrustedContact(ADA, Permission.WRITE, "Ada"), TrustedContact(GRACE, Permission.WRITE, "Grace")])


def _jid(phone: str) -> str:
    return phone[1:] + "@s.whatsapp.net"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    async with await AsyncStore.open(tmp_path / "cortask.db") as opened:
        yield opened


async def _until(sim: Wasim, predicate: Callable[[], bool], timeout: float = 30) -> None:
    """Until `predicate` holds, checked whenever a contact receives something."""
    if not predicate():
        await sim.events.wait_for("contact.received", lambda e: predicate(), since=0, timeout=timeout)


async def test_a_retry_request_from_another_chat_gets_nothing(sim: Wasim, make_channel: MakeChannel) -> None:
    channel = await make_channel(sim, trusted_contacts=tuple(BOTH.contacts.values()), pacing=None)
    await link(channel, sim)
    sim.add_contact(ADA, "Ada")
    sim.add_contact(GRACE, "Grace")
    await sim.messaging.send(ADA, "a secret, please")
    await sim.messaging.send(GRACE, "hello")
    await _until(sim, lambda: texts_received(sim, ADA) and texts_received(sim, GRACE))
    ours = next(x["id"] for x in sim.inbox(ADA) if x["type"] == "message")
    (conn,) = sim.connections.logged_in()

    async def retry_from(phone: str) -> None:
        receipt = Messaging._retry_receipt(sim.state.contacts[phone[1:]], ours, _jid(phone))
        await sim.messaging.send_receipt(conn, receipt)

    # The chat we sent it to asks again: Baileys re-encrypts it to Ada (she shows it once).
    mark = sim.events.last_seq
    await retry_from(ADA)
    await sim.events.wait_for("contact.duplicate", lambda e: e.data["id"] == ours, since=mark, timeout=20)
    # Grace names our message id to Ada: nothing is re-encrypted to her.
    mark = sim.events.last_seq
    await retry_from(GRACE)
    await asyncio.sleep(3)
    leaked = [e for e in sim.events.since(mark) if e.data.get("contact") == GRACE[1:] and e.data.get("id") == ours]
    assert leaked == [] and texts_received(sim, GRACE) == ["echo: hello"]


async def test_a_queued_message_is_answered_by_the_rules_in_force_when_its_turn_comes(
    sim: Wasim, make_channel: MakeChannel, store: AsyncStore
) -> None:
    busy, release = asyncio.Event(), asyncio.Event()
    ran: list[str] = []

    async def slow(message: InboundText) -> str:
        ran.append(message.text)
        if message.text.startswith("first"):
            busy.set()
            await release.wait()
        return f"agent: {message.text}"

    channel = await make_channel(
        sim, slow, ledger=StoreJournal(store), trusted_contacts=tuple(BOTH.contacts.values()), pacing=None
    )
    await link(channel, sim)
    account = (channel.account or {})["id"]
    sim.add_contact(ADA, "Ada")
    sim.add_contact(GRACE, "Grace")
    await sim.messaging.send(ADA, "first from Ada")
    await asyncio.wait_for(busy.wait(), 20)
    busy.clear()
    await sim.messaging.send(GRACE, "first from Grace")
    await asyncio.wait_for(busy.wait(), 20)
    waiting_ada = await sim.messaging.send(ADA, "second from Ada")
    waiting_grace = await sim.messaging.send(GRACE, "second from Grace")
    await channel.wait_activity(lambda a: a["kind"] == "received" and a["message_id"] == waiting_grace)
    await channel.wait_activity(lambda a: a["kind"] == "received" and a["message_id"] == waiting_ada)

    # While both wait in their chats' queues: Ada becomes read-only, Grace is removed.
    channel.set_policy(AccessPolicy([TrustedContact(ADA, Permission.READ, "Ada")]))
    release.set()
    await _until(sim, lambda: len(texts_received(sim, ADA)) >= 2 and len(texts_received(sim, GRACE)) >= 1)
    await channel.wait_activity(lambda a: a["kind"] == "skipped" and a["message_id"] == waiting_grace)
    await asyncio.sleep(1)
    assert texts_received(sim, ADA) == ["agent: first from Ada", READ_ONLY_REPLY]
    assert texts_received(sim, GRACE) == ["agent: first from Grace"]
    assert sorted(ran) == ["first from Ada", "first from Grace"]  # the agent never saw the queued ones
    skipped = await store.journal.get(account, _jid(GRACE), waiting_grace)
    assert skipped is not None and skipped.state is JournalState.SKIPPED


@pytest.mark.timeout(300)
async def test_a_flood_runs_the_agent_at_most_the_limit_and_other_chats_do_not_wait_behind_it(
    sim: Wasim, make_channel: MakeChannel, store: AsyncStore
) -> None:
    limit = 20
    runs: Counter[str] = Counter()

    async def agent(message: InboundText) -> str:
        runs[message.sender_phone or "?"] += 1
        await asyncio.sleep(0.2)  # an agent takes a while: the flood's answers queue up in its chat
        return f"agent: {message.text}"

    channel = await make_channel(
        sim,
        agent,
        ledger=StoreJournal(store),
        trusted_contacts=tuple(BOTH.contacts.values()),
        pacing=None,
        flood=FloodPolicy(per_minute=limit),
    )
    await link(channel, sim)
    account = (channel.account or {})["id"]
    sim.add_contact(ADA, "Ada")
    sim.add_contact(GRACE, "Grace")

    started = time.monotonic()
    flood = [await sim.messaging.send(ADA, f"spam {i}") for i in range(100)]
    asked = time.monotonic()
    await sim.messaging.send(GRACE, "are you there?")
    flood += [await sim.messaging.send(ADA, f"spam {i}") for i in range(100, 200)]
    assert time.monotonic() - started < 60, "the flood must arrive within a minute"
    await _until(sim, lambda: texts_received(sim, GRACE) == ["agent: are you there?"])
    answered_after = time.monotonic() - asked

    # Every flood message is recorded (answered or skipped), none left pending.
    async def settled() -> list[JournalState]:
        entries = [await store.journal.get(account, _jid(ADA), m) for m in flood]
        return [e.state for e in entries if e is not None]

    async with asyncio.timeout(60):
        while True:
            states = await settled()
            if states.count(JournalState.ANSWERED) + states.count(JournalState.SKIPPED) == 200:
                break
            await asyncio.sleep(0.2)
    await asyncio.sleep(1)
    assert runs[ADA] <= limit and runs[GRACE] == 1
    assert states.count(JournalState.ANSWERED) == runs[ADA] == len(texts_received(sim, ADA))
    assert states.count(JournalState.SKIPPED) == 200 - runs[ADA]
    # Grace waited for her own answer only, not behind Ada's queue (20 runs of 0.2 s).
    assert answered_after < limit * 0.2
    why = [a for a in channel.activity if a["kind"] == "skipped" and a.get("reason") == PER_MINUTE]
    assert len(why) == 1, why  # said once, not once per message
    assert channel.busy_chats == 0  # idle chat workers and queues are released


async def test_a_stranger_on_an_open_channel_gets_at_most_the_hourly_cap_of_agent_runs(
    sim: Wasim, make_channel: MakeChannel
) -> None:
    runs: list[str] = []

    async def agent(message: InboundText) -> str:
        runs.append(message.text)
        return f"agent: {message.text}"

    channel = await make_channel(
        sim, agent, open_to_everyone=True, pacing=None, flood=FloodPolicy(per_minute=30, open_per_hour=3)
    )
    await link(channel, sim)
    sim.add_contact(GRACE, "Grace")
    sent = [await sim.messaging.send(GRACE, f"hi {i}") for i in range(6)]
    await _until(sim, lambda: len(texts_received(sim, GRACE)) >= 3)
    await channel.wait_activity(lambda a: a["kind"] == "skipped" and a["message_id"] == sent[3])
    await asyncio.sleep(1)
    assert runs == ["hi 0", "hi 1", "hi 2"]
    assert texts_received(sim, GRACE) == ["agent: hi 0", "agent: hi 1", "agent: hi 2"]
    why = [a for a in channel.activity if a["kind"] == "skipped"]
    assert [a["reason"] for a in why] == [PER_HOUR]  # said once
