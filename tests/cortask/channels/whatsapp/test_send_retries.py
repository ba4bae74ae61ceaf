"""A reply whose sending keeps failing: retried with backoff, counted on its outbox row, given up
after the limit and said so; meanwhile other chats are answered and the pacing budget is kept.
Against a stand-in for the sidecar link (our own boundary) and the real journal on SQLite; the
real sidecar sends long replies in test_reply_parts_e2e.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cortask.channels.whatsapp import wire
from cortask.channels.whatsapp.activity import ActivityLog
from cortask.channels.whatsapp.config import WhatsAppConfig
from cortask.channels.whatsapp.inbound import InboundText
from cortask.channels.whatsapp.pacing import PacingPolicy
from cortask.channels.whatsapp.pipeline import ReplyPipeline
from cortask.channels.whatsapp.retry import RetryPolicy
from cortask.channels.whatsapp.sidecar import SidecarError
from cortask.store import AsyncStore, JournalState, OutboxState
from cortask.store_journal import StoreJournal

R = TypeVar("R")
ME = "4915100000000@s.whatsapp.net"
ADA = "4915123456789@s.whatsapp.net"
POISON = "447911123456@s.whatsapp.net"


class Link:
    """The sidecar link: every send to POISON fails as a sidecar error does."""

    def __init__(self) -> None:
        self.sends: list[tuple[str, str, float]] = []

    async def request(self, command: wire.Command[R], timeout: float = 60.0) -> R:
        if isinstance(command, wire.SendText):
            self.sends.append((command.jid, command.text, time.monotonic()))
            if command.jid == POISON:
                raise SidecarError("Cannot send: the recipient's devices could not be resolved")
        return None  # type: ignore[return-value]  # the pipeline does not read send results

    async def notify(self, command: wire.Command[Any]) -> None:
        pass


def message(chat: str, message_id: str, text: str) -> wire.WAMessage:
    return {
        "key": {"remoteJid": chat, "id": message_id, "fromMe": False},
        "message": {"conversation": text},
        "messageTimestamp": int(time.time()),
    }


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    async with await AsyncStore.open(tmp_path / "cortask.db") as opened:
        yield opened


async def test_a_poison_reply_is_given_up_without_holding_up_other_chats_or_the_pacing_budget(
    tmp_path: Path, store: AsyncStore
) -> None:
    config = WhatsAppConfig(
        auth_dir=tmp_path,
        open_to_everyone=True,
        pacing=PacingPolicy(rate_per_second=1.0, burst=2, jitter_seconds=0.0),
        send_retry=RetryPolicy(0.3, 0.3, attempts=4),
    )
    link, activity = Link(), ActivityLog()

    async def echo(item: InboundText) -> str:
        return f"echo: {item.text}"

    given_up: list[int] = []
    pipeline = ReplyPipeline(
        config, StoreJournal(store), link, activity,
        connected=lambda: True, account=lambda: ME, auth_store=lambda: None,
        on_traffic=lambda inbound: None, handler=echo,
    )  # fmt: skip
    pipeline.on_send_failed = given_up.append

    await pipeline.arrive(message(POISON, "P1", "poison"), "notify")
    await activity.wait(lambda e: e["kind"] == "retrying", timeout=5)
    start = time.monotonic()
    await pipeline.arrive(message(ADA, "A1", "while it retries"), "notify")
    await activity.wait(lambda e: e["kind"] == "replied" and e["chat"] == ADA, timeout=5)
    assert time.monotonic() - start < 0.25  # not held up by the other chat's failing send

    failed = await activity.wait(lambda e: e["kind"] == "send_failed", timeout=10)
    assert failed["chat"] == POISON and failed["attempts"] == 4
    assert given_up == [1]
    assert [kind for kind in (e["kind"] for e in activity.entries) if kind == "retrying"] == ["retrying"] * 3

    # Four failed attempts took no pacing tokens: two replies now still go out back to back.
    start = time.monotonic()
    await pipeline.arrive(message(ADA, "A2", "two"), "notify")
    await pipeline.arrive(message(ADA, "A3", "three"), "notify")
    await activity.wait(lambda e: e["kind"] == "replied" and _sent(link, "echo: three"), timeout=5)
    assert time.monotonic() - start < 0.5

    # The store is read on its own connection, which sees what is committed: let the chats'
    # workers finish recording (the last reply is marked sent just after it went out).
    for _ in range(500):
        if not pipeline.busy_chats:
            break
        await asyncio.sleep(0.01)
    # Counted on the outbox row, given up for good, and the message recorded as failed.
    row = (await store.outbox.reply_parts(POISON, "P1"))[0]
    assert row.state is OutboxState.FAILED and row.attempts == 4
    assert "could not be resolved" in (row.last_error or "")
    entry = await store.journal.get(ME, POISON, "P1")
    assert entry is not None and entry.state is JournalState.FAILED
    assert await store.outbox.pending() == []
    assert [jid for jid, _, _ in link.sends].count(POISON) == 4
    await pipeline.close()


def _sent(link: Link, text: str) -> bool:
    return any(t == text for _, t, _ in link.sends)


async def test_a_given_up_reply_is_not_sent_again_after_a_restart(tmp_path: Path, store: AsyncStore) -> None:
    config = WhatsAppConfig(
        auth_dir=tmp_path, open_to_everyone=True, pacing=None, send_retry=RetryPolicy(0.01, 0.01, attempts=2)
    )
    link, activity = Link(), ActivityLog()

    async def echo(item: InboundText) -> str:
        return f"echo: {item.text}"

    def make() -> ReplyPipeline:
        return ReplyPipeline(
            config, StoreJournal(store), link, activity,
            connected=lambda: True, account=lambda: ME, auth_store=lambda: None,
            on_traffic=lambda inbound: None, handler=echo,
        )  # fmt: skip

    first = make()
    await first.arrive(message(POISON, "P1", "poison"), "notify")
    await activity.wait(lambda e: e["kind"] == "send_failed", timeout=5)
    await first.close()
    again = make()
    again.request_resume()
    await again.arrive(message(ADA, "A1", "hello"), "notify")
    await activity.wait(lambda e: e["kind"] == "replied" and e["chat"] == ADA, timeout=5)
    assert [jid for jid, _, _ in link.sends].count(POISON) == 2
    await again.close()
