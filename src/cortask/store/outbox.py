"""The outbox: each reply, recorded under its id before it is sent, until it is known to be sent."""

from __future__ import annotations

import sqlite3

from cortask.store import decode, validate
from cortask.store.base import M, Repository, offloadable, readonly
from cortask.store.errors import InvalidInput, NotFound
from cortask.store.journal import find_entry, update_entry
from cortask.store.models import JournalState, OutboxItem, OutboxState

__all__ = ["OutboxRepository", "require_item"]


class OutboxRepository(Repository[M]):
    @offloadable
    def enqueue(
        self,
        chat_jid: str,
        text: str,
        *,
        in_reply_to: str | None = None,
        account: str | None = None,
        message_id: str | None = None,
        part: int = 0,
        parts: int = 1,
    ) -> OutboxItem:
        """Queue a reply before it is sent (durable when this returns).

        One item per (chat, `in_reply_to`): queueing the reply to the same message again returns
        the existing item, whatever its state, so a reply is never queued (or sent) twice. Give
        `account` too and marking the item sent also marks the journal entry answered. Give
        `message_id` (the WhatsApp id the reply will carry) and every attempt, also after a crash,
        sends it under that one id. A long reply is queued as `parts` items (`part` 0, 1, …), one
        per (chat, `in_reply_to`, `part`), each with its own id.
        """
        jid = validate.required("chat JID", chat_jid)
        if not isinstance(text, str) or not text:
            raise InvalidInput("A reply needs text: the outbox does not queue empty messages.")
        owner = validate.normalize_account(account) if account is not None else None
        if not 0 <= part < parts:
            raise InvalidInput(f"Part {part} of {parts} does not exist: parts are numbered from 0.")
        with self._db.write() as db:
            cursor = db.execute(
                "INSERT INTO outbox (chat_jid, text, in_reply_to, account, created_at, message_id, part, parts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (chat_jid, in_reply_to, part) WHERE in_reply_to IS NOT NULL DO NOTHING",
                (jid, text, in_reply_to, owner, self._db.now(), message_id, part, parts),
            )
            if cursor.rowcount:
                row = db.execute("SELECT * FROM outbox WHERE id = ?", (cursor.lastrowid,)).fetchone()
            else:
                row = db.execute(
                    "SELECT * FROM outbox WHERE chat_jid = ? AND in_reply_to = ? AND part = ?",
                    (jid, in_reply_to, part),
                ).fetchone()
            return decode.outbox_item(row)

    @readonly
    def pending(self, chat_jid: str | None = None) -> list[OutboxItem]:
        """Items still to send, in the order they were queued."""
        with self._db.read() as db:
            if chat_jid is None:
                rows = db.execute("SELECT * FROM outbox WHERE state = 'pending' ORDER BY id").fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM outbox WHERE state = 'pending' AND chat_jid = ? ORDER BY id", (chat_jid,)
                ).fetchall()
        return [decode.outbox_item(row) for row in rows]

    @readonly
    def reply_parts(self, chat_jid: str, in_reply_to: str) -> list[OutboxItem]:
        """Every part queued as the reply to `in_reply_to` in the chat, in order (empty: none yet)."""
        with self._db.read() as db:
            rows = db.execute(
                "SELECT * FROM outbox WHERE chat_jid = ? AND in_reply_to = ? ORDER BY part", (chat_jid, in_reply_to)
            ).fetchall()
        return [decode.outbox_item(row) for row in rows]

    @offloadable
    def mark_sent(self, item_id: int, sent_message_id: str) -> bool:
        """Record that the item was sent. True the first time; False if it was already marked sent.

        In the same transaction, the journal entry it answers (when the item has an account and
        `in_reply_to`, and the entry is not finished) is marked answered with this message, once
        every part of the reply is sent.
        """
        sent_id = validate.required("sent message id", sent_message_id)
        with self._db.write() as db:
            item = require_item(db, item_id)
            if item.state is OutboxState.SENT:
                return False
            now = self._db.now()
            db.execute(
                "UPDATE outbox SET state = 'sent', sent_message_id = ?, sent_at = ? WHERE id = ? AND state = 'pending'",
                (sent_id, now, item.id),
            )
            if item.account is not None and item.in_reply_to is not None:
                entry = find_entry(db, validate.journal_key(item.account, item.chat_jid, item.in_reply_to))
                texts = _reply_texts(db, item)
                if entry is not None and not entry.state.is_final and texts is not None:
                    update_entry(
                        db,
                        entry,
                        now,
                        state=JournalState.ANSWERED,
                        reply_message_id=sent_id,
                        reply_text="\n\n".join(texts),
                        error=None,
                    )
            return True

    @offloadable
    def record_failure(self, item_id: int, error: str) -> int:
        """A send of the item failed: count it (and keep the error); returns the attempts so far."""
        with self._db.write() as db:
            item = require_item(db, item_id)
            db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?", (str(error), item.id))
            return item.attempts + 1

    @offloadable
    def mark_failed(self, item_id: int, error: str) -> list[OutboxItem]:
        """Give up sending the item, and the later parts of the same reply (a reply is not sent
        with a hole in it); the journal entry it answers is marked failed. Returns the items given
        up; an item already sent is left as it is."""
        with self._db.write() as db:
            item = require_item(db, item_id)
            if item.in_reply_to is None:
                ids = [item.id]
            else:
                rows = db.execute(
                    "SELECT id FROM outbox WHERE chat_jid = ? AND in_reply_to = ? AND part >= ? AND state = 'pending'",
                    (item.chat_jid, item.in_reply_to, item.part),
                ).fetchall()
                ids = [row["id"] for row in rows]
            db.executemany(
                "UPDATE outbox SET state = 'failed', last_error = ? WHERE id = ? AND state = 'pending'",
                [(str(error), failed) for failed in ids],
            )
            if item.account is not None and item.in_reply_to is not None:
                entry = find_entry(db, validate.journal_key(item.account, item.chat_jid, item.in_reply_to))
                if entry is not None and not entry.state.is_final:
                    update_entry(db, entry, self._db.now(), state=JournalState.FAILED, error=f"not sent: {error}")
            return [require_item(db, failed) for failed in ids]


def _reply_texts(db: sqlite3.Connection, item: OutboxItem) -> list[str] | None:
    """The texts of every part of the reply `item` belongs to, in order; None while one is unsent."""
    rows = db.execute(
        "SELECT text, state FROM outbox WHERE chat_jid = ? AND in_reply_to = ? ORDER BY part",
        (item.chat_jid, item.in_reply_to),
    ).fetchall()
    if any(row["state"] != "sent" for row in rows):
        return None
    return [row["text"] for row in rows]


def require_item(db: sqlite3.Connection, item_id: int) -> OutboxItem:
    row = db.execute("SELECT * FROM outbox WHERE id = ?", (item_id,)).fetchone()
    if row is None:
        raise NotFound(f"There is no outbox item {item_id}: list pending items with outbox.pending().")
    return decode.outbox_item(row)
