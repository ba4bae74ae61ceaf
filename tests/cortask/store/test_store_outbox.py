"""The outbox: replies queued while the connection is down, each sent exactly once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from store_support import journal_begin_attempt, outbox_get, outbox_mark_failed, outbox_prune

from cortask.migrations import migrate
from cortask.store import InvalidInput, JournalState, NotFound, OutboxState, Store
from cortask.store.schema import MIGRATIONS

ME = "4915100000000@s.whatsapp.net"
ANNA = "4915123456789@s.whatsapp.net"
BOB = "12125550100@s.whatsapp.net"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "cortask.db") as opened:
        yield opened


def test_enqueue_and_list_in_order(store: Store) -> None:
    a1 = store.outbox.enqueue(ANNA, "first", in_reply_to="M1")
    b1 = store.outbox.enqueue(BOB, "for bob")
    a2 = store.outbox.enqueue(ANNA, "second", in_reply_to="M2")
    assert (a1.chat_jid, a1.text, a1.in_reply_to, a1.state, a1.attempts) == (
        ANNA,
        "first",
        "M1",
        OutboxState.PENDING,
        0,
    )
    assert (a1.sent_message_id, a1.sent_at, a1.account, a1.last_error) == (None, None, None, None)
    assert store.outbox.pending() == [a1, b1, a2]
    assert store.outbox.pending(ANNA) == [a1, a2]
    assert outbox_get(store, b1.id) == b1


def test_a_reply_to_the_same_message_is_queued_once(store: Store) -> None:
    first = store.outbox.enqueue(ANNA, "answer", in_reply_to="M1")
    again = store.outbox.enqueue(ANNA, "answer, generated again", in_reply_to="M1")
    assert again == first
    assert store.outbox.pending() == [first]
    # the same message id in another chat is another message; unlinked replies are all kept
    other = store.outbox.enqueue(BOB, "answer", in_reply_to="M1")
    loose = [store.outbox.enqueue(ANNA, "note"), store.outbox.enqueue(ANNA, "note")]
    assert len({first.id, other.id, *(item.id for item in loose)}) == 4


def test_mark_sent_exactly_once(store: Store) -> None:
    item = store.outbox.enqueue(ANNA, "answer", in_reply_to="M1")
    assert store.outbox.mark_sent(item.id, "SENT1") is True
    assert store.outbox.mark_sent(item.id, "SENT2") is False
    sent = outbox_get(store, item.id)
    assert (sent.state, sent.sent_message_id) == (OutboxState.SENT, "SENT1")
    assert sent.sent_at is not None
    assert store.outbox.pending() == []
    # queueing the same reply after it was sent gives back the sent item: the caller must not send it
    assert store.outbox.enqueue(ANNA, "answer", in_reply_to="M1") == sent


def test_failed_attempts_are_counted_and_the_item_stays_pending(store: Store) -> None:
    item = store.outbox.enqueue(ANNA, "answer")
    outbox_mark_failed(store, item.id, "connection closed")
    failed = outbox_mark_failed(store, item.id, "still closed")
    assert (failed.state, failed.attempts, failed.last_error) == (OutboxState.PENDING, 2, "still closed")
    assert store.outbox.pending() == [failed]
    store.outbox.mark_sent(item.id, "S1")
    with pytest.raises(InvalidInput, match="already sent"):
        outbox_mark_failed(store, item.id, "late")


def test_sending_marks_the_journal_entry_answered_in_the_same_transaction(store: Store) -> None:
    store.journal.record(ME, ANNA, "M1", ANNA, "question")
    journal_begin_attempt(store, ME, ANNA, "M1")
    item = store.outbox.enqueue(ANNA, "the answer", in_reply_to="M1", account="4915100000000:3@s.whatsapp.net")
    assert item.account == ME
    entry = store.journal.get(ME, ANNA, "M1")
    assert entry is not None and entry.state is JournalState.PENDING  # queued is not answered
    assert store.outbox.mark_sent(item.id, "S1") is True
    entry = store.journal.get(ME, ANNA, "M1")
    assert entry is not None
    assert (entry.state, entry.reply_message_id, entry.reply_text) == (JournalState.ANSWERED, "S1", "the answer")
    assert store.journal.pending() == []


def test_sending_leaves_a_finished_journal_entry_alone(store: Store) -> None:
    store.journal.record(ME, ANNA, "M1", ANNA, "question")
    store.journal.mark_skipped(ME, ANNA, "M1", "operator")
    item = store.outbox.enqueue(ANNA, "late answer", in_reply_to="M1", account=ME)
    assert store.outbox.mark_sent(item.id, "S1") is True
    entry = store.journal.get(ME, ANNA, "M1")
    assert entry is not None and entry.state is JournalState.SKIPPED
    unknown = store.outbox.enqueue(BOB, "x", in_reply_to="never-recorded", account=ME)
    assert store.outbox.mark_sent(unknown.id, "S2") is True


def test_outbox_survives_a_reopen(tmp_path: Path) -> None:
    with Store.open(tmp_path / "cortask.db") as store:
        a = store.outbox.enqueue(ANNA, "one", in_reply_to="M1")
        b = store.outbox.enqueue(ANNA, "two", in_reply_to="M2")
        store.outbox.mark_sent(a.id, "S1")
    with Store.open(tmp_path / "cortask.db") as store:
        assert [item.id for item in store.outbox.pending()] == [b.id]
        assert store.outbox.mark_sent(a.id, "S1-again") is False


def test_bad_items(store: Store) -> None:
    with pytest.raises(InvalidInput, match="needs text"):
        store.outbox.enqueue(ANNA, "")
    with pytest.raises(InvalidInput, match="chat JID is empty"):
        store.outbox.enqueue("", "x")
    with pytest.raises(NotFound, match="no outbox item 99"):
        outbox_get(store, 99)
    with pytest.raises(NotFound):
        store.outbox.mark_sent(99, "S")
    item = store.outbox.enqueue(ANNA, "x")
    with pytest.raises(InvalidInput, match="sent message id is empty"):
        store.outbox.mark_sent(item.id, "")
    assert outbox_get(store, item.id).state is OutboxState.PENDING


def test_prune_forgets_old_sent_items(tmp_path: Path) -> None:
    now = [datetime(2025, 3, 1, tzinfo=UTC)]
    with Store.open(tmp_path / "cortask.db", clock=lambda: now[0]) as store:
        old = store.outbox.enqueue(ANNA, "old")
        waiting = store.outbox.enqueue(ANNA, "waiting")
        store.outbox.mark_sent(old.id, "S1")
        now[0] += timedelta(days=20)
        new = store.outbox.enqueue(ANNA, "new")
        store.outbox.mark_sent(new.id, "S2")
        assert outbox_prune(store, now[0] - timedelta(days=14)) == 1
        with pytest.raises(NotFound):
            outbox_get(store, old.id)
        assert outbox_get(store, new.id).state is OutboxState.SENT
        assert store.outbox.pending() == [waiting]


def test_the_reserved_message_id_is_kept_for_every_attempt(store: Store) -> None:
    item = store.outbox.enqueue(ANNA, "answer", in_reply_to="M1", account=ME, message_id="3EB0AAA")
    assert item.message_id == "3EB0AAA"
    # planned again after a crash (a new id offered): the first reservation wins, so a resend
    # carries the id the phone may already have
    again = store.outbox.enqueue(ANNA, "answer, generated again", in_reply_to="M1", account=ME, message_id="3EB0BBB")
    assert (again.id, again.message_id, again.text) == (item.id, "3EB0AAA", "answer")
    assert store.outbox.pending() == [item]


def test_a_long_reply_is_queued_as_parts_once_and_answers_its_message_when_all_are_sent(store: Store) -> None:
    store.journal.record(ME, ANNA, "M1", "+4915123456789", "hi")
    parts = [
        store.outbox.enqueue(ANNA, text, in_reply_to="M1", account=ME, message_id=f"R{n}", part=n, parts=3)
        for n, text in enumerate(("one", "two", "three"))
    ]
    again = store.outbox.enqueue(ANNA, "other", in_reply_to="M1", account=ME, message_id="X", part=1, parts=3)
    assert again == parts[1]  # each part queued once, under its own id
    assert store.outbox.reply_parts(ANNA, "M1") == parts
    assert [(p.part, p.parts, p.message_id) for p in parts] == [(0, 3, "R0"), (1, 3, "R1"), (2, 3, "R2")]
    store.outbox.mark_sent(parts[0].id, "R0")
    store.outbox.mark_sent(parts[1].id, "R1")
    entry = store.journal.get(ME, ANNA, "M1")
    assert entry is not None and entry.state is JournalState.PENDING  # a part is still to go
    assert store.outbox.pending() == [parts[2]]
    store.outbox.mark_sent(parts[2].id, "R2")
    entry = store.journal.get(ME, ANNA, "M1")
    assert entry is not None and entry.state is JournalState.ANSWERED
    assert entry.reply_text == "one\n\ntwo\n\nthree"
    with pytest.raises(InvalidInput, match="numbered from 0"):
        store.outbox.enqueue(ANNA, "x", in_reply_to="M2", part=3, parts=3)


def test_a_send_given_up_fails_its_later_parts_and_its_message(store: Store) -> None:
    store.journal.record(ME, ANNA, "M1", "+4915123456789", "hi")
    parts = [
        store.outbox.enqueue(ANNA, text, in_reply_to="M1", account=ME, message_id=f"R{n}", part=n, parts=3)
        for n, text in enumerate(("one", "two", "three"))
    ]
    store.outbox.mark_sent(parts[0].id, "R0")
    assert store.outbox.record_failure(parts[1].id, "timed out") == 1
    assert store.outbox.record_failure(parts[1].id, "timed out again") == 2
    given_up = store.outbox.mark_failed(parts[1].id, "timed out again")
    assert [(p.part, p.state, p.attempts) for p in given_up] == [(1, OutboxState.FAILED, 2), (2, OutboxState.FAILED, 0)]
    assert store.outbox.pending() == []
    assert outbox_get(store, parts[0].id).state is OutboxState.SENT  # what went out stays sent
    entry = store.journal.get(ME, ANNA, "M1")
    assert entry is not None and entry.state is JournalState.FAILED and "timed out again" in (entry.error or "")


def test_migration_5_keeps_the_outbox_and_its_one_reply_rule(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path, isolation_level=None) as conn:
        migrate(conn, path, MIGRATIONS[:3])  # a database written before parts existed
        conn.execute(
            "INSERT INTO outbox (chat_jid, text, in_reply_to, account, created_at, message_id, attempts) "
            "VALUES (?, 'kept', 'M1', ?, '2026-01-01T00:00:00.000000+00:00', 'R1', 2)",
            (ANNA, ME),
        )
    conn.close()
    with Store.open(path) as store:
        (item,) = store.outbox.pending()
        assert (item.text, item.message_id, item.attempts, item.part, item.parts) == ("kept", "R1", 2, 0, 1)
        assert store.outbox.enqueue(ANNA, "again", in_reply_to="M1", account=ME) == item
