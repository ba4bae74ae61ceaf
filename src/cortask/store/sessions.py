"""Sessions and their history: the turns of each conversation, in order, each WhatsApp message once."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from cortask.store import decode, validate
from cortask.store.base import M, Repository, offloadable, readonly
from cortask.store.db import encode_time
from cortask.store.errors import InvalidInput
from cortask.store.models import HistoryMessage, Role, Session

__all__ = ["SessionRepository"]

_MAX_SQLITE_INT = 2**63 - 1


class SessionRepository(Repository[M]):
    @offloadable
    def ensure(self, session_id: str) -> Session:
        """The session, created (empty) if it does not exist yet."""
        sid = validate.required("session id", session_id)
        with self._db.write() as db:
            return _ensure(db, sid, self._db.now())

    @readonly
    def recent(self) -> list[Session]:
        """All sessions, most recently active first."""
        with self._db.read() as db:
            return [decode.session(row) for row in db.execute("SELECT * FROM sessions ORDER BY updated_at DESC, id")]

    @offloadable
    def append(
        self,
        session_id: str,
        role: Role | str,
        text: str,
        *,
        message_id: str | None = None,
        at: datetime | None = None,
    ) -> HistoryMessage:
        """Add a turn to a session's history (creating the session).

        A turn with a WhatsApp message id is stored once: appending the same id to the same
        session again returns the turn already stored, unchanged.
        """
        try:
            turn_role = Role(role)
        except ValueError:
            raise InvalidInput(f"{role!r} is not a role: use user or assistant.") from None
        if not isinstance(text, str):
            raise InvalidInput("A message's text must be a string.")
        sid = validate.required("session id", session_id)
        now = self._db.now()
        when = encode_time(validate.aware(at, "at")) if at is not None else now
        with self._db.write() as db:
            _ensure(db, sid, now)
            cursor = db.execute(
                "INSERT INTO messages (session_id, role, text, at, message_id) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (session_id, message_id) WHERE message_id IS NOT NULL DO NOTHING",
                (sid, turn_role.value, text, when, message_id),
            )
            if cursor.rowcount:
                db.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (self._db.now(), sid))
                row = db.execute("SELECT * FROM messages WHERE seq = ?", (cursor.lastrowid,)).fetchone()
            else:
                row = db.execute(
                    "SELECT * FROM messages WHERE session_id = ? AND message_id = ?", (sid, message_id)
                ).fetchone()
            return decode.message(row)

    @readonly
    def has_message(self, session_id: str, message_id: str) -> bool:
        """Whether the session already holds the turn with this WhatsApp message id."""
        with self._db.read() as db:
            row = db.execute(
                "SELECT 1 FROM messages WHERE session_id = ? AND message_id = ?", (session_id, message_id)
            ).fetchone()
        return row is not None

    @offloadable
    def forget(self, session_id: str) -> int:
        """Drop a session's turns (`/reset`: the agent starts that conversation afresh); returns
        how many. The session itself stays."""
        with self._db.write() as db:
            return db.execute("DELETE FROM messages WHERE session_id = ?", (session_id,)).rowcount

    @readonly
    def history(self, session_id: str, limit: int | None = None) -> list[HistoryMessage]:
        """The last `limit` turns (all when None), oldest first."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InvalidInput(f"limit must be a whole number of turns, 0 or more (got {limit!r}).")
        # SQLite's LIMIT is a 64-bit integer; a larger limit (an API client may send one) means all.
        bound = -1 if limit is None or limit > _MAX_SQLITE_INT else limit
        with self._db.read() as db:
            rows = db.execute(
                "SELECT * FROM (SELECT * FROM messages WHERE session_id = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                (session_id, bound),
            ).fetchall()
        return [decode.message(row) for row in rows]


def _ensure(db: sqlite3.Connection, session_id: str, now: str) -> Session:
    db.execute("INSERT OR IGNORE INTO sessions (id, created_at, updated_at) VALUES (?, ?, ?)", (session_id, now, now))
    return decode.session(db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone())
