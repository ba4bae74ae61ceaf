"""Strangers waiting for the owner's approval (issue #14): each held first message under a short
code, until it is approved, rejected (the number is then muted) or expires.

`hold` keeps a stranger's message unless that number is muted, already waiting, or the day's
allowance of new requests is used up; `resolve` takes a code once. Times are seconds since the
epoch, passed in (the caller's clock), so expiry is testable without waiting.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass

from cortask.store.base import M, Repository, offloadable, readonly
from cortask.store.errors import InvalidInput, NotFound
from cortask.store.models import Approval
from cortask.store.workspaces import require_workspace

__all__ = ["DAILY_LIMIT", "ApprovalRepository", "Held", "new_code"]

DAILY_LIMIT = 5  # new requests a day: a flood of strangers cannot flood the owner's chat
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud and typed on a phone


def new_code() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(6))


@dataclass(frozen=True, slots=True)
class Held:
    """What `hold` did: `approval` is new (tell the owner) or None with the reason it was not kept."""

    approval: Approval | None
    reason: str | None = None  # muted | waiting | daily_limit


class ApprovalRepository(Repository[M]):
    @offloadable
    def hold(
        self,
        workspace_id: int,
        *,
        phone: str,
        chat_jid: str,
        message_id: str,
        sender_jid: str,
        push_name: str | None,
        text: str,
        message_ts: int | None,
        now: float,
        valid_hours: float,
    ) -> Held:
        with self._db.write() as db:
            require_workspace(db, workspace_id)
            states = {row[0] for row in db.execute(
                "SELECT state FROM whatsapp_approvals WHERE workspace_id = ? AND phone = ? AND "
                "(state = 'rejected' OR (state = 'pending' AND expires_at > ?))",
                (workspace_id, phone, now),
            )}  # fmt: skip
            if "rejected" in states:
                return Held(None, "muted")
            if "pending" in states:
                return Held(None, "waiting")
            today = db.execute(
                "SELECT count(*) FROM whatsapp_approvals WHERE workspace_id = ? AND created_at > ?",
                (workspace_id, now - 86400),
            ).fetchone()[0]
            if today >= DAILY_LIMIT:
                return Held(None, "daily_limit")
            code = _unused_code(db, workspace_id)
            db.execute(
                "INSERT INTO whatsapp_approvals (workspace_id, code, phone, chat_jid, message_id, sender_jid, "
                "push_name, text, message_ts, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (workspace_id, code, phone, chat_jid, message_id, sender_jid, push_name, text, message_ts, now,
                 now + valid_hours * 3600),
            )  # fmt: skip
            return Held(_get(db, workspace_id, code))

    @readonly
    def pending(self, workspace_id: int, now: float) -> list[Approval]:
        """The requests still waiting (not expired), oldest first."""
        with self._db.read() as db:
            require_workspace(db, workspace_id)
            rows = db.execute(
                "SELECT * FROM whatsapp_approvals WHERE workspace_id = ? AND state = 'pending' AND expires_at > ? "
                "ORDER BY id",
                (workspace_id, now),
            )
            return [_approval(row) for row in rows]

    @offloadable
    def resolve(self, workspace_id: int, code: str, state: str, now: float) -> Approval:
        """Approve or reject a waiting request by its code, once. Raises NotFound (no such code),
        InvalidInput (expired, or decided before) with a sentence saying so."""
        if state not in ("approved", "rejected"):
            raise InvalidInput(f"{state!r} is not a decision: approved or rejected.")
        wanted = code.strip().upper()
        with self._db.write() as db:
            require_workspace(db, workspace_id)
            found = _get(db, workspace_id, wanted)
            if found is None:
                raise NotFound(f"There is no request with the code {wanted}: check the code in the notice.")
            if found.state != "pending":
                raise InvalidInput(f"The request {wanted} was {found.state} before: nothing to do.")
            if found.expires_at <= now:
                raise InvalidInput(f"The code {wanted} has expired: nothing was answered. They can write again.")
            db.execute(
                "UPDATE whatsapp_approvals SET state = ? WHERE workspace_id = ? AND code = ?",
                (state, workspace_id, wanted),
            )
            return _get(db, workspace_id, wanted) or found


def _unused_code(db: sqlite3.Connection, workspace_id: int) -> str:
    while True:
        code = new_code()
        if _get(db, workspace_id, code) is None:
            return code


def _get(db: sqlite3.Connection, workspace_id: int, code: str) -> Approval | None:
    row = db.execute(
        "SELECT * FROM whatsapp_approvals WHERE workspace_id = ? AND code = ?", (workspace_id, code)
    ).fetchone()
    return _approval(row) if row is not None else None


def _approval(row: sqlite3.Row) -> Approval:
    return Approval(
        code=row["code"], phone=row["phone"], chat_jid=row["chat_jid"], message_id=row["message_id"],
        sender_jid=row["sender_jid"], push_name=row["push_name"], text=row["text"], message_ts=row["message_ts"],
        created_at=float(row["created_at"]), expires_at=float(row["expires_at"]), state=row["state"],
    )  # fmt: skip
