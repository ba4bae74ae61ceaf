"""The inbound journal: recorded before processing, never processed or answered twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from store_support import journal_begin_attempt, journal_counts, journal_mark_answered, journal_prune, journal_retry

from cortask.store import (
    InvalidInput,
    JournalState,
    JournalStateError,
    NotFound,
    Store,
    normalize_account,
)

ME = "4915100000000@s.whatsapp.net"
ME_DEVICE = "4915100000000:7@s.whatsapp.net"
ANNA = "4915123456789@s.whatsapp.net"
BOB = "12125550100@s.whatsapp.net"
GROUP = "120363000000000001@g.us"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store.open(tmp_path / "cortask.db", clock=clock) as opened:
        yield opened


def record(store: Store, chat: str, message_id: str, text: str = "hi", sender: str | None = None) -> bool:
    return store.journal.record(ME, chat, message_id, sender or chat, text)


def test_record_then_get(store: Store, clock: Clock) -> None:
    stamp = datetime(2025, 3, 1, 11, 59, 58, tzinfo=UTC)
    assert store.journal.record(ME, GROUP, "M1", ANNA, "hello", message_timestamp=stamp) is True
    entry = store.journal.get(ME, GROUP, "M1")
    assert entry is not None
    assert entry.key == (ME, GROUP, "M1")
    assert (entry.sender, entry.text, entry.message_timestamp) == (ANNA, "hello", stamp)
    assert entry.state is JournalState.PENDING
    assert (entry.attempts, entry.reply_message_id, entry.reply_text, entry.error, entry.reason) == (
        0,
        None,
        None,
        None,
        None,
    )
    assert entry.received_at <= clock.now
    assert store.journal.get(ME, GROUP, "M2") is None


def test_message_timestamp_in_unix_seconds(store: Store) -> None:
    store.journal.record(ME, ANNA, "M1", ANNA, "x", message_timestamp=1_700_000_000)
    entry = store.journal.get(ME, ANNA, "M1")
    assert entry is not None
    assert entry.message_timestamp == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_record_is_idempotent(store: Store) -> None:
    assert record(store, ANNA, "M1", "first") is True
    assert record(store, ANNA, "M1", "redelivered") is False
    assert record(store, ANNA, "M1", "again") is False
    entry = store.journal.get(ME, ANNA, "M1")
    assert entry is not None and entry.text == "first"
    assert [e.message_id for e in store.journal.pending()] == ["M1"]
    # the key is (account, chat, message id): the same id elsewhere is another message
    assert record(store, BOB, "M1") is True
    assert store.journal.record("4915199999999@s.whatsapp.net", ANNA, "M1", ANNA, "x") is True


def test_the_account_is_keyed_without_its_device(store: Store) -> None:
    assert store.journal.record(ME_DEVICE, ANNA, "M1", ANNA, "x") is True
    assert store.journal.record(ME, ANNA, "M1", ANNA, "x") is False
    assert store.journal.record("4915100000000:9@s.whatsapp.net", ANNA, "M1", ANNA, "x") is False
    entry = store.journal.get(ME_DEVICE, ANNA, "M1")
    assert entry is not None and entry.account == ME
    assert normalize_account("4915100000000_1:3@lid") == "4915100000000@lid"
    with pytest.raises(InvalidInput, match="not a WhatsApp JID"):
        normalize_account("4915100000000")


def test_answered_is_never_pending_again(store: Store) -> None:
    record(store, ANNA, "M1")
    entry = journal_begin_attempt(store, ME, ANNA, "M1")
    assert entry.attempts == 1
    answered = journal_mark_answered(store, ME, ANNA, "M1", reply_message_id="R1", reply_text="hello back")
    assert (answered.state, answered.reply_message_id, answered.reply_text) == (
        JournalState.ANSWERED,
        "R1",
        "hello back",
    )
    assert store.journal.pending() == []
    assert record(store, ANNA, "M1") is False  # a redelivery after answering
    assert store.journal.pending() == []
    assert store.journal.get(ME, ANNA, "M1") == answered


def test_marking_answered_again_is_a_no_op_with_the_same_reply_and_an_error_otherwise(store: Store) -> None:
    record(store, ANNA, "M1")
    first = journal_mark_answered(store, ME, ANNA, "M1", reply_message_id="R1", reply_text="a")
    assert journal_mark_answered(store, ME, ANNA, "M1", reply_message_id="R1", reply_text="a") == first
    with pytest.raises(JournalStateError, match=r"already answered.*must not be processed again"):
        journal_mark_answered(store, ME, ANNA, "M1", reply_message_id="R2")
    with pytest.raises(JournalStateError):
        store.journal.mark_failed(ME, ANNA, "M1", "late failure")
    with pytest.raises(JournalStateError):
        store.journal.mark_skipped(ME, ANNA, "M1", "too late")
    with pytest.raises(JournalStateError):
        journal_begin_attempt(store, ME, ANNA, "M1")
    with pytest.raises(JournalStateError, match="only a failed message can be retried"):
        journal_retry(store, ME, ANNA, "M1")
    assert store.journal.get(ME, ANNA, "M1") == first


def test_failed_leaves_pending_until_retried_then_can_be_answered(store: Store) -> None:
    record(store, ANNA, "M1")
    journal_begin_attempt(store, ME, ANNA, "M1")
    failed = store.journal.mark_failed(ME, ANNA, "M1", "agent timed out")
    assert (failed.state, failed.error, failed.attempts) == (JournalState.FAILED, "agent timed out", 1)
    assert store.journal.pending() == []
    again = store.journal.mark_failed(ME, ANNA, "M1", "still down")
    assert again.error == "still down"
    with pytest.raises(JournalStateError, match="is failed, not pending"):
        journal_begin_attempt(store, ME, ANNA, "M1")

    retried = journal_retry(store, ME, ANNA, "M1")
    assert retried.state is JournalState.PENDING
    assert journal_retry(store, ME, ANNA, "M1") == retried  # already pending
    assert [e.message_id for e in store.journal.pending()] == ["M1"]
    assert journal_begin_attempt(store, ME, ANNA, "M1").attempts == 2
    answered = journal_mark_answered(store, ME, ANNA, "M1", reply_message_id="R1")
    assert (answered.state, answered.error, answered.attempts) == (JournalState.ANSWERED, None, 2)


def test_a_failed_message_can_be_answered_directly(store: Store) -> None:
    record(store, ANNA, "M1")
    store.journal.mark_failed(ME, ANNA, "M1", "send failed")
    assert journal_mark_answered(store, ME, ANNA, "M1", reply_message_id="R1").state is JournalState.ANSWERED


def test_skipped_is_final_and_keeps_its_reason(store: Store) -> None:
    record(store, ANNA, "M1")
    skipped = store.journal.mark_skipped(ME, ANNA, "M1", "older than 10 minutes when replayed")
    assert (skipped.state, skipped.reason) == (JournalState.SKIPPED, "older than 10 minutes when replayed")
    assert store.journal.mark_skipped(ME, ANNA, "M1", "other reason") == skipped
    with pytest.raises(JournalStateError, match="already skipped"):
        journal_mark_answered(store, ME, ANNA, "M1", reply_message_id="R1")
    assert store.journal.pending() == []
    assert record(store, ANNA, "M1") is False


def test_unknown_entries(store: Store) -> None:
    calls: list[Callable[[], object]] = [
        lambda: journal_mark_answered(store, ME, ANNA, "nope"),
        lambda: store.journal.mark_failed(ME, ANNA, "nope", "x"),
        lambda: store.journal.mark_skipped(ME, ANNA, "nope", "x"),
        lambda: journal_begin_attempt(store, ME, ANNA, "nope"),
        lambda: journal_retry(store, ME, ANNA, "nope"),
    ]
    for call in calls:
        with pytest.raises(NotFound, match=r"not in the journal: record it with journal\.record"):
            call()


def test_bad_records_are_refused(store: Store) -> None:
    with pytest.raises(InvalidInput, match="message id is empty"):
        store.journal.record(ME, ANNA, "", ANNA, "x")
    with pytest.raises(InvalidInput, match="chat JID is empty"):
        store.journal.record(ME, "", "M1", ANNA, "x")
    with pytest.raises(InvalidInput, match="sender is empty"):
        store.journal.record(ME, ANNA, "M1", "", "x")
    with pytest.raises(InvalidInput, match="message_timestamp"):
        store.journal.record(ME, ANNA, "M1", ANNA, "x", message_timestamp="yesterday")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="timezone-aware"):
        store.journal.record(ME, ANNA, "M1", ANNA, "x", received_at=datetime(2025, 1, 1))
    assert store.journal.pending() == []


def test_pending_in_arrival_order_per_chat(store: Store) -> None:
    # Arrival order, not WhatsApp's timestamp: a live message may arrive before older offline ones.
    arrivals = [(ANNA, "A1", 30), (BOB, "B1", 10), (ANNA, "A2", 20), (GROUP, "G1", 5), (BOB, "B2", 40), (ANNA, "A3", 1)]
    for chat, mid, ts in arrivals:
        store.journal.record(ME, chat, mid, chat, mid, message_timestamp=1_700_000_000 + ts)
    journal_mark_answered(store, ME, ANNA, "A2", reply_message_id="R")
    pending = store.journal.pending()
    assert [e.message_id for e in pending] == ["A1", "B1", "G1", "B2", "A3"]
    assert [e.seq for e in pending] == sorted(e.seq for e in pending)
    assert [e.message_id for e in store.journal.pending(chat_jid=ANNA)] == ["A1", "A3"]
    assert [e.message_id for e in store.journal.pending(chat_jid=BOB)] == ["B1", "B2"]
    assert [e.message_id for e in store.journal.pending(ME_DEVICE, chat_jid=GROUP)] == ["G1"]
    assert store.journal.pending("4915199999999@s.whatsapp.net") == []


def test_counts_by_state(store: Store) -> None:
    assert journal_counts(store) == dict.fromkeys(JournalState, 0)
    for mid in ("M1", "M2", "M3", "M4", "M5"):
        record(store, ANNA, mid)
    journal_mark_answered(store, ME, ANNA, "M1", reply_message_id="R1")
    journal_mark_answered(store, ME, ANNA, "M2", reply_message_id="R2")
    store.journal.mark_failed(ME, ANNA, "M3", "x")
    store.journal.mark_skipped(ME, ANNA, "M4", "y")
    store.journal.record("4915199999999@s.whatsapp.net", ANNA, "M9", ANNA, "x")
    expected = {JournalState.PENDING: 2, JournalState.ANSWERED: 2, JournalState.FAILED: 1, JournalState.SKIPPED: 1}
    assert journal_counts(store) == expected
    assert journal_counts(store, ME_DEVICE) == {**expected, JournalState.PENDING: 1}


def test_prune_forgets_only_old_finished_entries(store: Store, clock: Clock) -> None:
    for mid in ("old-answered", "old-skipped", "old-failed", "old-pending"):
        record(store, ANNA, mid)
    journal_mark_answered(store, ME, ANNA, "old-answered", reply_message_id="R")
    store.journal.mark_skipped(ME, ANNA, "old-skipped", "x")
    store.journal.mark_failed(ME, ANNA, "old-failed", "x")
    clock.now += timedelta(days=30)
    cutoff = clock.now
    record(store, ANNA, "new-answered")
    journal_mark_answered(store, ME, ANNA, "new-answered", reply_message_id="R2")

    assert journal_prune(store, cutoff) == 2
    assert store.journal.get(ME, ANNA, "old-answered") is None
    assert store.journal.get(ME, ANNA, "old-skipped") is None
    for kept in ("old-failed", "old-pending", "new-answered"):
        assert store.journal.get(ME, ANNA, kept) is not None
    assert journal_prune(store, cutoff) == 0


def test_recording_and_history_atomically(store: Store) -> None:
    """A caller can record the message and its turn in one transaction: both or neither."""
    with pytest.raises(RuntimeError), store.transaction():
        assert record(store, ANNA, "M1") is True
        store.sessions.append("whatsapp:" + ANNA, "user", "hi", message_id="M1")
        raise RuntimeError("crash before commit")
    assert store.journal.get(ME, ANNA, "M1") is None
    assert store.sessions.history("whatsapp:" + ANNA) == []
    assert record(store, ANNA, "M1") is True
