"""The outbox: each reply, recorded under its id before it is sent, until it is known to be sent."""

from __future__ import annotations

import sqlite3

from cortask.store import decode, validate
from cortask.store.base import M, Repository, offloadable
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
    ) -> OutboxItem:
        """Queue a reply before it is sent (durable when this returns).

        One item per (chat, `in_reply_to`): queueing the reply to the same message again returns
        the existing item, whatever its state, so a reply is never queued (or sent) twice. Give
        `account` too and marking the item sent also marks the journal entry answered. Give
        `message_id` (the WhatsApp id the reply will carry) and every attempt, also after a crash,
        sends it under that one id.
        """
        jid = validate.required("chat JID", chat_jid)
        if not isinstance(text, str) or not text:
            raise InvalidInput("A reply needs text: the outbox does not queue empty messages.")
        owner = validate.normalize_account(account) if account is not None else None
        with self._db.write() as db:
            cursor = db.execute(
                "INSERT INTO outbox (chat_jid, text, in_reply_to, account, created_at, message_id) "
                "VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (chat_jid, in_reply_to) WHERE in_reply_to IS NOT NULL DO NOTHING",
                (jid, text, in_reply_to, owner, self._db.now(), message_id),
            )
            if cursor.rowcount:
                row = db.execute("SELECT * FROM outbox WHERE id = ?", (cursor.lastrowid,)).fetchone()
            else:
                row = db.execute(
                    "SELECT * FROM outbox WHERE chat_jid = ? AND in_reply_to = ?", (jid, in_reply_to)
                ).fetchone()
            return decode.outbox_item(row)

    @offloadable
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

    @offloadable
    def mark_sent(self, item_id: int, sent_message_id: str) -> bool:
        """Record that the item was sent. True the first time; False if it was already marked sent.

        In the same transaction, the journal entry it answers (when the item has an account and
        `in_reply_to`, and the entry is not finished) is marked answered with this message.
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
                if entry is not None and not entry.state.is_final:
                    update_entry(
                        db,
                        entry,
                        now,
                        state=JournalState.ANSWERED,
                        reply_message_id=sent_id,
                        reply_text=item.text,
                        error=None,
                    )
            return True


def require_item(db: sqlite3.Connection, item_id: int) -> OutboxItem:
    row = db.execute("SELECT * FROM outbox WHERE id = ?", (item_id,)).fetchone()
    if row is None:
        raise NotFound(f"There is no outbox item {item_id}: list pending items with outbox.pending().")
    return decode.outbox_item(row)
