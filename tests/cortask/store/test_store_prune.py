"""Retention against a real SQLite database with old timestamps: what is pruned, what stays."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cortask.store import Store, session_id_for_chat
from cortask.store.prune import footprint, prune, prune_batch
from cortask.store.retention import Retention

ACCOUNT = "4915100000000@s.whatsapp.net"
CHAT = "4915123456789@s.whatsapp.net"
SID = session_id_for_chat(CHAT)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=45)


class Clock:
    def __init__(self) -> None:
        self.now = LONG_AGO

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store.open(tmp_path / "cortask.db", clock=clock) as opened:
        yield opened


def answered(store: Store, message_id: str) -> None:
    store.journal.record(ACCOUNT, CHAT, message_id, "+4915123456789", "hi", received_at=store._clock())
    item = store.outbox.enqueue(CHAT, "hello", in_reply_to=message_id, account=ACCOUNT, message_id="R" + message_id)
    store.outbox.mark_sent(item.id, "R" + message_id)


def test_old_finished_records_go_and_what_is_pending_or_recent_stays(store: Store, clock: Clock) -> None:
    answered(store, "OLD-ANSWERED")
    store.journal.record(ACCOUNT, CHAT, "OLD-PENDING", "+4915123456789", "still waiting", received_at=LONG_AGO)
    store.journal.record(ACCOUNT, CHAT, "OLD-FAILED", "+4915123456789", "agent broke", received_at=LONG_AGO)
    store.journal.mark_failed(ACCOUNT, CHAT, "OLD-FAILED", "boom")
    unsent = store.outbox.enqueue(CHAT, "sorry", in_reply_to="OLD-FAILED", account=ACCOUNT, message_id="RF")
    clock.now = NOW - timedelta(days=2)
    answered(store, "RECENT")

    pruned = prune(store, Retention(days=30), NOW)

    assert (pruned.journal, pruned.outbox) == (1, 1)
    assert store.journal.get(ACCOUNT, CHAT, "OLD-ANSWERED") is None
    assert [e.message_id for e in store.journal.pending(ACCOUNT)] == ["OLD-PENDING"]
    assert store.journal.get(ACCOUNT, CHAT, "OLD-FAILED") is not None  # its reply is still to be sent
    assert [o.id for o in store.outbox.pending()] == [unsent.id]
    assert store.journal.get(ACCOUNT, CHAT, "RECENT") is not None
    # once the waiting reply is sent (and that is old news too), the rest goes
    store.outbox.mark_sent(unsent.id, "RF")
    assert prune(store, Retention(days=30), NOW + timedelta(days=31)).journal == 2  # OLD-FAILED, RECENT
    assert [e.message_id for e in store.journal.pending(ACCOUNT)] == ["OLD-PENDING"]


def test_history_keeps_each_sessions_last_turns_whatever_their_age(store: Store, clock: Clock) -> None:
    for n in range(30):
        store.sessions.append(SID, "user" if n % 2 == 0 else "assistant", f"turn {n}")
    store.sessions.append("whatsapp:quiet@s.whatsapp.net", "user", "one old turn")
    clock.now = NOW
    store.sessions.append("whatsapp:busy@s.whatsapp.net", "user", "today")

    assert prune(store, Retention(days=30, keep_turns=20), NOW).turns == 10

    assert [m.text for m in store.sessions.history(SID)] == [f"turn {n}" for n in range(10, 30)]
    assert [m.text for m in store.sessions.history("whatsapp:quiet@s.whatsapp.net")] == ["one old turn"]


def test_a_batch_prunes_at_most_its_size_and_the_next_one_continues(store: Store) -> None:
    for n in range(7):
        answered(store, f"M{n}")
    retention = Retention(days=30, batch=3)
    assert [prune_batch(store, retention, NOW).journal for _ in range(4)] == [3, 3, 1, 0]


def test_the_footprint_says_the_size_and_the_oldest_record_kept(store: Store, clock: Clock) -> None:
    empty = footprint(store)
    assert empty.oldest is None and empty.bytes > 0
    answered(store, "OLD")
    clock.now = NOW
    answered(store, "NEW")
    assert footprint(store).oldest == LONG_AGO
    prune(store, Retention(days=30), NOW)
    assert footprint(store).oldest == NOW
