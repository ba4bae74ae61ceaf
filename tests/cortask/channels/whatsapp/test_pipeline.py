"""Nothing lost, nothing doubled: the journal and the outbox under redelivery, restarts, a dying
or hung sidecar, a backlog, pacing and refusals — real Baileys, the real sidecar, wasim, SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from testkit.channel import MakeChannel, link, texts_received, wait_state

from cortask.channels.whatsapp.channel import WhatsAppChannel
from cortask.channels.whatsapp.inbound import InboundText
from cortask.channels.whatsapp.pacing import PacingPolicy
from cortask.channels.whatsapp.state import ConnectionState
from cortask.contacts.access import TrustedContact
from cortask.store import AsyncStore, JournalEntry, JournalState
from cortask.store_journal import StoreJournal
from wasim.server.app import Wasim

pytestmark = pytest.mark.e2e

ADA = "+4915123456789"
GRACE = "+447911123456"
TRUSTED = (TrustedContact.parse(ADA, "write", name="Ada"), TrustedContact.parse(GRACE, "write", name="Grace"))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    async with await AsyncStore.open(tmp_path / "cortask.db") as opened:
        yield opened


async def _texts(sim: Wasim, phone: str, count: int, timeout: float = 20) -> list[str]:
    """What `phone` received once at least `count` messages arrived."""
    if len(texts_received(sim, phone)) < count:
        await sim.events.wait_for(
            "contact.received", lambda e: len(texts_received(sim, phone)) >= count, since=0, timeout=timeout
        )
    return texts_received(sim, phone)


async def _journal_settled(store: AsyncStore, account: str, chat: str, message_id: str) -> JournalEntry:
    """The journal entry once it left `pending` (the reply is marked sent just after it went out)."""
    async with asyncio.timeout(10):
        while True:
            entry = await store.journal.get(account, chat, message_id)
            if entry is not None and entry.state is not JournalState.PENDING:
                return entry
            await asyncio.sleep(0.05)


async def _linked(sim: Wasim, make_channel: MakeChannel, store: AsyncStore, **config: object) -> WhatsAppChannel:
    channel = await make_channel(sim, ledger=StoreJournal(store), trusted_contacts=TRUSTED, **config)
    await link(channel, sim)
    sim.add_contact(ADA, "Ada")
    sim.add_contact(GRACE, "Grace")
    return channel


async def test_a_redelivered_message_is_answered_once_also_after_a_restart(
    store: AsyncStore, sim: Wasim, make_channel: MakeChannel
) -> None:
    channel = await _linked(sim, make_channel, store)
    first = await sim.messaging.send(ADA, "hello")
    assert await _texts(sim, ADA, 1) == ["echo: hello"]

    await sim.messaging.redeliver(first)
    await channel.wait_activity(lambda a: a["message_id"] == first and a["kind"] == "duplicate")
    await channel.close()

    again = await make_channel(sim, ledger=StoreJournal(store), trusted_contacts=TRUSTED)
    await again.start()
    await wait_state(again, ConnectionState.OPEN)
    await sim.messaging.redeliver(first)
    await again.wait_activity(lambda a: a["message_id"] == first and a["kind"] == "duplicate")
    await sim.messaging.send(ADA, "still there?")
    assert await _texts(sim, ADA, 2) == ["echo: hello", "echo: still there?"]
    account = (again.account or {})["id"]
    entry = await _journal_settled(store, account, ADA[1:] + "@s.whatsapp.net", first)
    assert entry.state is JournalState.ANSWERED


async def test_messages_sent_while_stopped_are_answered_once_in_order_and_old_ones_are_skipped(
    store: AsyncStore, sim: Wasim, make_channel: MakeChannel, caplog: pytest.LogCaptureFixture
) -> None:
    channel = await _linked(sim, make_channel, store)
    account = (channel.account or {})["id"]
    await channel.close()  # the service is down; WhatsApp keeps what arrives

    stale = await sim.messaging.send(ADA, "from yesterday", age=25 * 3600)
    for text in ("one", "two", "three"):
        await sim.messaging.send(ADA, text)
    await sim.messaging.send(GRACE, "hi from Grace")

    caplog.set_level(logging.INFO, logger="cortask.whatsapp")
    again = await make_channel(sim, ledger=StoreJournal(store), trusted_contacts=TRUSTED)
    await again.start()
    assert await _texts(sim, ADA, 3) == ["echo: one", "echo: two", "echo: three"]
    assert await _texts(sim, GRACE, 1) == ["echo: hi from Grace"]
    entry = await store.journal.get(account, ADA[1:] + "@s.whatsapp.net", stale)
    assert entry is not None and entry.state is JournalState.SKIPPED
    assert any(stale in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records)
    await asyncio.sleep(1)  # nothing more comes
    assert texts_received(sim, ADA) == ["echo: one", "echo: two", "echo: three"]


async def test_a_reply_ready_when_the_sidecar_dies_is_sent_once_after_reconnecting(
    store: AsyncStore, sim: Wasim, make_channel: MakeChannel
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(message: InboundText) -> str:
        started.set()
        await release.wait()
        return f"done: {message.text}"

    channel = await make_channel(sim, slow, ledger=StoreJournal(store), trusted_contacts=TRUSTED)
    await link(channel, sim)
    sim.add_contact(ADA, "Ada")
    await sim.messaging.send(ADA, "think about it")
    await asyncio.wait_for(started.wait(), 20)

    pid = channel.sidecar_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # mid-message: the agent is still working
    await wait_state(channel, ConnectionState.RECONNECTING, ConnectionState.CONNECTING)
    release.set()
    assert await _texts(sim, ADA, 1) == ["done: think about it"]
    await wait_state(channel, ConnectionState.OPEN)
    await asyncio.sleep(1)
    assert texts_received(sim, ADA) == ["done: think about it"]


async def test_a_retry_request_the_dying_sidecar_never_answered_is_answered_after_the_restart(
    store: AsyncStore, sim: Wasim, make_channel: MakeChannel
) -> None:
    # Ada's phone cannot open our reply and asks for it again, but the sidecar dies before that
    # request reaches it. WhatsApp keeps the request until a device acknowledges it, so the
    # restarted sidecar gets it and sends the reply again from our store.
    channel = await _linked(sim, make_channel, store)
    await sim.messaging.send(ADA, "first")
    assert await _texts(sim, ADA, 1) == ["echo: first"]
    pid = channel.sidecar_pid
    assert pid is not None
    send_receipt = sim.messaging.send_receipt
    lost: list[str] = []

    async def lost_with_the_connection(conn: Any, receipt: Any) -> None:
        if receipt.attrs.get("type") == "retry" and not lost:
            lost.append(receipt.attrs["id"])
            conn.blackhole()  # the connection goes quiet: the request never gets through
            os.kill(pid, signal.SIGKILL)
        await send_receipt(conn, receipt)

    sim.messaging.send_receipt = lost_with_the_connection  # type: ignore[method-assign]
    sim.messaging.fail_next_decrypt.add(ADA[1:])
    await sim.messaging.send(ADA, "second")
    assert await _texts(sim, ADA, 2) == ["echo: first", "echo: second"]
    assert len(lost) == 1 and channel.sidecar_pid not in (None, pid)
    await asyncio.sleep(1)
    assert texts_received(sim, ADA) == ["echo: first", "echo: second"]


async def test_a_reply_planned_before_a_crash_goes_out_once_under_its_reserved_id(
    store: AsyncStore, sim: Wasim, make_channel: MakeChannel, tmp_path: Path
) -> None:
    """The crash windows, replayed: killed after the reply was recorded (not sent), and killed
    after it was sent but before that was recorded. Either way the contact sees it once."""
    channel = await _linked(sim, make_channel, store)
    account = (channel.account or {})["id"]
    await channel.close()
    ledger = StoreJournal(store)
    chat = ADA[1:] + "@s.whatsapp.net"
    item = InboundText(chat, "3EB0FEEDFACE", chat, ADA, None, "Ada", "what time is it?", int(time.time()), False, True)
    await ledger.admit(account, item)
    planned = await ledger.plan_reply(account, item, "it is time", "3EB0AAAAAAAAAAAAAAAAAA")

    again = await make_channel(sim, ledger=ledger, trusted_contacts=TRUSTED)
    await again.start()
    assert await _texts(sim, ADA, 1) == ["it is time"]
    assert [x["id"] for x in sim.inbox(ADA) if x["type"] == "message"] == [planned.message_id]
    entry = await _journal_settled(store, account, chat, item.message_id)
    assert (entry.state, entry.reply_message_id) == (JournalState.ANSWERED, planned.message_id)

    # sent, but the crash came before that was recorded: a store that still has it planned
    # (the state the crash leaves) sends it again, under the same id, and the phone shows it once
    await again.close()
    async with await AsyncStore.open(tmp_path / "before-the-mark.db") as earlier:
        stale_ledger = StoreJournal(earlier)
        await stale_ledger.admit(account, item)
        await stale_ledger.plan_reply(account, item, "it is time", planned.message_id)
        since = sim.events.last_seq
        third = await make_channel(sim, ledger=stale_ledger, trusted_contacts=TRUSTED)
        await third.start()
        await sim.events.wait_for("contact.duplicate", lambda e: e.data["id"] == planned.message_id, since=since)
        await third.close()
    assert texts_received(sim, ADA) == ["it is time"]


async def test_a_hung_sidecar_is_restarted_by_the_watchdog(
    store: AsyncStore, sim: Wasim, make_channel: MakeChannel
) -> None:
    channel = await _linked(sim, make_channel, store, watchdog_interval_seconds=0.5, watchdog_timeout_seconds=1.0)
    pid = channel.sidecar_pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # alive, but answers nothing
    try:
        await channel.wait_activity(lambda a: a["kind"] == "watchdog", timeout=20)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    await wait_state(channel, ConnectionState.OPEN, where=lambda s: channel.sidecar_pid not in (None, pid))
    await sim.messaging.send(ADA, "are you back?")
    assert await _texts(sim, ADA, 1) == ["echo: are you back?"]


async def test_replies_are_paced_like_a_person(store: AsyncStore, sim: Wasim, make_channel: MakeChannel) -> None:
    channel = await _linked(
        sim, make_channel, store, pacing=PacingPolicy(rate_per_second=2.0, burst=1, jitter_seconds=0)
    )
    assert channel.status.state is ConnectionState.OPEN
    for i in range(2):
        await sim.messaging.send(ADA, f"a{i}")
        await sim.messaging.send(GRACE, f"g{i}")
    await _texts(sim, ADA, 2)
    await _texts(sim, GRACE, 2)
    stamps = sorted(x["at"] for phone in (ADA, GRACE) for x in sim.inbox(phone) if x["type"] == "message")
    # one token to start with, then one every 0.5 s: the four replies are sent over 1.5 s (unpaced,
    # they arrive within a tenth of that; some slack for the first one's longer way)
    assert stamps[-1] - stamps[0] >= 1.2


async def test_a_reply_whatsapp_refuses_is_not_sent_again(
    store: AsyncStore, sim: Wasim, make_channel: MakeChannel
) -> None:
    channel = await _linked(sim, make_channel, store)
    sim.messaging.refuse_next[ADA[1:]] = "463"
    since = sim.events.last_seq
    await sim.messaging.send(ADA, "hello")
    refused = await channel.wait_activity(lambda a: a["kind"] == "refused")
    assert refused["error"] == "463"
    await sim.messaging.send(ADA, "and now?")
    assert await _texts(sim, ADA, 1) == ["echo: and now?"]
    rejected = sim.events.since(since, "message.rejected")
    assert [e.data["id"] for e in rejected] == [refused["message_id"]]  # one attempt, never retried
