"""The retention rules (`cortask.store.retention`) applied to the database, one small batch at a time,
and what the status shows of it: the database's size and its oldest record.

Each `prune_batch` is one transaction over at most `Retention.batch` candidates per table, so a
writer that waits (the journal, during a burst) waits for one batch, not for the whole clean-up.
Call it again until it reports nothing pruned.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from cortask.store.db import decode_time, encode_time
from cortask.store.retention import (
    JournalRow,
    OutboxRow,
    Retention,
    TurnRow,
    journal_to_prune,
    outbox_to_prune,
    turns_to_prune,
)
from cortask.store.store import Store

__all__ = ["Footprint", "Pruned", "footprint", "prune", "prune_batch"]


@dataclass(frozen=True, slots=True)
class Pruned:
    journal: int = 0
    outbox: int = 0
    turns: int = 0

    @property
    def total(self) -> int:
        return self.journal + self.outbox + self.turns

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(self.journal + other.journal, self.outbox + other.outbox, self.turns + other.turns)


@dataclass(frozen=True, slots=True)
class Footprint:
    bytes: int  # the database file and its write-ahead log
    oldest: datetime | None  # the oldest journal entry, outbox item or session turn kept


def prune_batch(store: Store, retention: Retention, now: datetime) -> Pruned:
    """Prune up to one batch per table of what `retention` lets go, in one transaction."""
    cutoff = encode_time(retention.cutoff(now))
    limit = retention.batch
    with store.write() as db:
        journal = journal_to_prune(_old_journal(db, cutoff, limit), cutoff, _awaiting_reply(db))
        outbox = outbox_to_prune(_old_outbox(db, cutoff, limit), cutoff)
        turns = turns_to_prune(_old_turns(db, cutoff, retention.keep_turns, limit), cutoff, retention.keep_turns)
        _delete(db, "inbound_journal", "seq", journal)
        _delete(db, "outbox", "id", outbox)
        _delete(db, "messages", "seq", turns)
    return Pruned(len(journal), len(outbox), len(turns))


def prune(store: Store, retention: Retention, now: datetime) -> Pruned:
    """Everything `retention` lets go, batch after batch (synchronously; the service awaits each
    batch on its own so other store calls run in between)."""
    total = Pruned()
    while (done := prune_batch(store, retention, now)).total:
        total += done
    return total


def footprint(store: Store) -> Footprint:
    size = 0
    for suffix in ("", "-wal"):
        try:
            size += os.stat(f"{store.path}{suffix}").st_size
        except FileNotFoundError:
            pass
    with store.read() as db:
        row = db.execute(
            "SELECT min(t) FROM (SELECT min(received_at) AS t FROM inbound_journal "
            "UNION ALL SELECT min(created_at) FROM outbox UNION ALL SELECT min(at) FROM messages)"
        ).fetchone()
    return Footprint(size, decode_time(row[0]) if row[0] is not None else None)


# -- SQL: candidates (old enough, in bounded batches), then the rules decide ----------------------


def _old_journal(db: sqlite3.Connection, cutoff: str, limit: int) -> list[JournalRow]:
    # Narrowed as the rules would, so a batch is never filled with entries the rules keep.
    rows = db.execute(
        "SELECT seq, chat_jid, message_id, state, received_at, updated_at FROM inbound_journal AS j "
        "WHERE state != 'pending' AND received_at < ? AND updated_at < ? AND NOT EXISTS (SELECT 1 FROM outbox "
        "WHERE state = 'pending' AND chat_jid = j.chat_jid AND in_reply_to = j.message_id) ORDER BY seq LIMIT ?",
        (cutoff, cutoff, limit),
    )
    return [JournalRow(*row) for row in rows]


def _awaiting_reply(db: sqlite3.Connection) -> set[tuple[str, str]]:
    rows = db.execute("SELECT chat_jid, in_reply_to FROM outbox WHERE state = 'pending' AND in_reply_to IS NOT NULL")
    return {(str(chat), str(reply_to)) for chat, reply_to in rows}


def _old_outbox(db: sqlite3.Connection, cutoff: str, limit: int) -> list[OutboxRow]:
    rows = db.execute(
        "SELECT id, state, created_at, sent_at FROM outbox "
        "WHERE state != 'pending' AND coalesce(sent_at, created_at) < ? ORDER BY id LIMIT ?",
        (cutoff, limit),
    )
    return [OutboxRow(*row) for row in rows]


def _old_turns(db: sqlite3.Connection, cutoff: str, keep: int, limit: int) -> list[TurnRow]:
    # `newer` counts the turns after each one in its session: the last `keep` are never candidates.
    rows = db.execute(
        "SELECT seq, at, newer FROM (SELECT seq, at, "
        "row_number() OVER (PARTITION BY session_id ORDER BY seq DESC) - 1 AS newer FROM messages) "
        "WHERE at < ? AND newer >= ? ORDER BY seq LIMIT ?",
        (cutoff, keep, limit),
    )
    return [TurnRow(*row) for row in rows]


def _delete(db: sqlite3.Connection, table: str, key: str, ids: list[int]) -> None:
    # table and key are ours; the ids go as parameters (a batch stays under SQLite's 999 limit)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        db.execute(f"DELETE FROM {table} WHERE {key} IN ({','.join('?' * len(chunk))})", chunk)
