"""The inbound journal: every accepted message, recorded before it is processed, and what became of it.

Keyed by (account, chat, message id), so a message WhatsApp delivers again is recognised and
neither processed nor answered twice. Pending entries are replayed after a restart.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from cortask.store import decode, validate
from cortask.store.base import M, Repository, offloadable, readonly
from cortask.store.db import encode_time
from cortask.store.errors import InvalidInput, JournalStateError, NotFound
from cortask.store.models import JournalEntry, JournalState

__all__ = ["JournalRepository", "check_open", "find_entry", "require_entry", "update_entry"]


class JournalRepository(Repository[M]):
    @offloadable
    def record(
        self,
        account: str,
        chat_jid: str,
        message_id: str,
        sender: str,
        text: str,
        *,
        message_timestamp: datetime | float | None = None,
        received_at: datetime | None = None,
    ) -> bool:
        """Record an inbound message before processing it; False if it was already recorded.

        Durable when this returns (synchronous=FULL). A message that is already in the journal,
        whatever its state, is left as it is: redeliveries are neither processed nor answered twice.
        `message_timestamp` is WhatsApp's (a datetime or Unix seconds).
        """
        key = validate.journal_key(account, chat_jid, message_id)
        if not isinstance(text, str):
            raise InvalidInput("A message's text must be a string.")
        stamp = validate.timestamp(message_timestamp)
        now = self._db.now()
        arrived = encode_time(validate.aware(received_at, "received_at")) if received_at is not None else now
        with self._db.write() as db:
            cursor = db.execute(
                "INSERT INTO inbound_journal (account, chat_jid, message_id, sender, text, received_at, message_ts, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, chat_jid, message_id) DO NOTHING",
                (*key, validate.required("sender", sender), text, arrived, stamp, now),
            )
            return cursor.rowcount > 0

    @readonly
    def get(self, account: str, chat_jid: str, message_id: str) -> JournalEntry | None:
        key = validate.journal_key(account, chat_jid, message_id)
        with self._db.read() as db:
            return find_entry(db, key)

    @offloadable
    def mark_failed(self, account: str, chat_jid: str, message_id: str, error: str) -> JournalEntry:
        """Processing failed: the entry leaves the pending list, so it is not replayed after a restart."""
        with self._db.write() as db:
            entry = require_entry(db, account, chat_jid, message_id)
            check_open(entry, JournalState.FAILED)
            return update_entry(db, entry, self._db.now(), state=JournalState.FAILED, error=str(error))

    @offloadable
    def mark_skipped(self, account: str, chat_jid: str, message_id: str, reason: str) -> JournalEntry:
        """Deliberately not answered (e.g. too old when replayed). Final; skipping again changes nothing."""
        with self._db.write() as db:
            entry = require_entry(db, account, chat_jid, message_id)
            if entry.state is JournalState.SKIPPED:
                return entry
            check_open(entry, JournalState.SKIPPED)
            return update_entry(db, entry, self._db.now(), state=JournalState.SKIPPED, reason=str(reason))

    @readonly
    def pending(self, account: str | None = None, *, chat_jid: str | None = None) -> list[JournalEntry]:
        """Pending entries in arrival order (so each chat's are in its own arrival order)."""
        sql = "SELECT * FROM inbound_journal WHERE state = 'pending'"
        params: list[str] = []
        if account is not None:
            sql += " AND account = ?"
            params.append(validate.normalize_account(account))
        if chat_jid is not None:
            sql += " AND chat_jid = ?"
            params.append(chat_jid)
        with self._db.read() as db:
            rows = db.execute(sql + " ORDER BY seq", params).fetchall()
        return [decode.journal_entry(row) for row in rows]


def find_entry(db: sqlite3.Connection, key: tuple[str, str, str]) -> JournalEntry | None:
    """The entry under a key already checked by `validate.journal_key`, if any."""
    row = db.execute(
        "SELECT * FROM inbound_journal WHERE account = ? AND chat_jid = ? AND message_id = ?", key
    ).fetchone()
    return decode.journal_entry(row) if row is not None else None


def require_entry(db: sqlite3.Connection, account: str, chat_jid: str, message_id: str) -> JournalEntry:
    entry = find_entry(db, validate.journal_key(account, chat_jid, message_id))
    if entry is None:
        raise NotFound(
            f"Message {message_id} in {chat_jid} is not in the journal: record it with journal.record() first."
        )
    return entry


def check_open(entry: JournalEntry, target: JournalState) -> None:
    """Refuse to move a finished (answered or skipped) entry anywhere else."""
    if entry.state.is_final:
        raise JournalStateError(
            f"Message {entry.message_id} in {entry.chat_jid} was already {entry.state} and cannot be marked "
            f"{target}: it is finished and must not be processed again."
        )


_COLUMNS = frozenset({"state", "attempts", "reply_message_id", "reply_text", "error", "reason"})


def update_entry(db: sqlite3.Connection, entry: JournalEntry, now: str, **changes: object) -> JournalEntry:
    """Set the given columns of an entry (and its updated_at) and return it as stored."""
    assert changes.keys() <= _COLUMNS
    values = {key: value.value if isinstance(value, JournalState) else value for key, value in changes.items()}
    columns = ", ".join(f"{name} = ?" for name in values)  # names are ours, not the caller's
    db.execute(
        f"UPDATE inbound_journal SET {columns}, updated_at = ? WHERE seq = ?", (*values.values(), now, entry.seq)
    )
    return decode.journal_entry(db.execute("SELECT * FROM inbound_journal WHERE seq = ?", (entry.seq,)).fetchone())
