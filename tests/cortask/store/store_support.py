"""Store operations that only tests use, kept out of the product.

The product needs one workspace, no chat routing, no journal retries or pruning (yet): these
functions set up and inspect what the tests need, over the same `Database` transactions and the
same row decoders as the repositories. Each takes the synchronous `Store`; from asyncio call
them with ``await astore.run(create_workspace, "Work")``.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from cortask.store import (
    ChatMapping,
    Duplicate,
    InvalidInput,
    JournalEntry,
    JournalState,
    JournalStateError,
    OutboxItem,
    OutboxState,
    Session,
    Store,
    Workspace,
    decode,
    validate,
)
from cortask.store.db import encode_time
from cortask.store.journal import check_open, require_entry, update_entry
from cortask.store.outbox import require_item
from cortask.store.whatsapp import allowed_users_of
from cortask.store.workspaces import first_workspace, require_workspace


class LastWorkspace(InvalidInput):
    """The last workspace cannot be deleted: unmapped chats need somewhere to go."""


# --- workspaces ------------------------------------------------------------------------------


def create_workspace(store: Store, name: str) -> Workspace:
    clean = validate.workspace_name(name)
    with store.write() as db:
        try:
            cursor = db.execute("INSERT INTO workspaces (name, created_at) VALUES (?, ?)", (clean, store.now()))
        except sqlite3.IntegrityError:
            raise Duplicate(f"There is already a workspace called “{clean}”: choose another name.") from None
        assert cursor.lastrowid is not None
        return require_workspace(db, cursor.lastrowid)


def get_workspace(store: Store, workspace_id: int) -> Workspace:
    with store.read() as db:
        return require_workspace(db, workspace_id)


def find_workspace(store: Store, name: str) -> Workspace | None:
    """The workspace with this name (case-insensitive), if any."""
    with store.read() as db:
        row = db.execute("SELECT * FROM workspaces WHERE name = ?", (name.strip(),)).fetchone()
    return decode.workspace(row) if row is not None else None


def list_workspaces(store: Store) -> list[Workspace]:
    """All workspaces, oldest first."""
    with store.read() as db:
        return [decode.workspace(row) for row in db.execute("SELECT * FROM workspaces ORDER BY id")]


def default_workspace(store: Store) -> Workspace:
    with store.read() as db:
        return first_workspace(db)


def rename_workspace(store: Store, workspace_id: int, name: str) -> Workspace:
    clean = validate.workspace_name(name)
    with store.write() as db:
        require_workspace(db, workspace_id)
        try:
            db.execute("UPDATE workspaces SET name = ? WHERE id = ?", (clean, workspace_id))
        except sqlite3.IntegrityError:
            raise Duplicate(f"There is already a workspace called “{clean}”: choose another name.") from None
        return require_workspace(db, workspace_id)


def delete_workspace(store: Store, workspace_id: int) -> None:
    """Delete a workspace; its settings and chat mappings go with it (ON DELETE CASCADE)."""
    with store.write() as db:
        workspace = require_workspace(db, workspace_id)
        (count,) = db.execute("SELECT count(*) FROM workspaces").fetchone()
        if count <= 1:
            raise LastWorkspace(
                f"“{workspace.name}” is the only workspace and cannot be deleted: create another one first."
            )
        db.execute("DELETE FROM workspaces WHERE id = ?", (workspace_id,))


def whatsapp_workspaces(store: Store) -> list[Workspace]:
    """The workspaces that have added the WhatsApp channel, oldest first."""
    with store.read() as db:
        rows = db.execute(
            "SELECT w.* FROM workspaces w JOIN whatsapp_settings s ON s.workspace_id = w.id "
            "WHERE s.enabled = 1 ORDER BY w.id"
        ).fetchall()
    return [decode.workspace(row) for row in rows]


def allowed_users(store: Store, workspace_id: int) -> tuple[str, ...]:
    with store.read() as db:
        require_workspace(db, workspace_id)
        return allowed_users_of(db, workspace_id)


def clear_agent_settings(store: Store, workspace_id: int) -> bool:
    with store.write() as db:
        require_workspace(db, workspace_id)
        return db.execute("DELETE FROM agent_settings WHERE workspace_id = ?", (workspace_id,)).rowcount > 0


# --- which chat goes to which workspace (the schema has it; the product routes all to the first) --


def map_chat(store: Store, chat_jid: str, workspace_id: int) -> ChatMapping:
    jid = validate.required("chat JID", chat_jid)
    with store.write() as db:
        require_workspace(db, workspace_id)
        db.execute(
            "INSERT INTO chat_workspaces (chat_jid, workspace_id, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (chat_jid) DO UPDATE SET workspace_id = excluded.workspace_id, "
            "created_at = excluded.created_at",
            (jid, workspace_id, store.now()),
        )
        return decode.chat_mapping(db.execute("SELECT * FROM chat_workspaces WHERE chat_jid = ?", (jid,)).fetchone())


def unmap_chat(store: Store, chat_jid: str) -> bool:
    with store.write() as db:
        return db.execute("DELETE FROM chat_workspaces WHERE chat_jid = ?", (chat_jid,)).rowcount > 0


def chat_mappings(store: Store, workspace_id: int | None = None) -> list[ChatMapping]:
    with store.read() as db:
        if workspace_id is None:
            rows = db.execute("SELECT * FROM chat_workspaces ORDER BY chat_jid").fetchall()
        else:
            require_workspace(db, workspace_id)
            rows = db.execute(
                "SELECT * FROM chat_workspaces WHERE workspace_id = ? ORDER BY chat_jid", (workspace_id,)
            ).fetchall()
    return [decode.chat_mapping(row) for row in rows]


def workspace_for_chat(store: Store, chat_jid: str) -> Workspace:
    with store.read() as db:
        row = db.execute(
            "SELECT w.* FROM chat_workspaces c JOIN workspaces w ON w.id = c.workspace_id WHERE c.chat_jid = ?",
            (chat_jid,),
        ).fetchone()
        return decode.workspace(row) if row is not None else first_workspace(db)


# --- sessions --------------------------------------------------------------------------------


def get_session(store: Store, session_id: str) -> Session | None:
    with store.read() as db:
        row = db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return decode.session(row) if row is not None else None


def clear_history(store: Store, session_id: str) -> int:
    with store.write() as db:
        cursor = db.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
        if cursor.rowcount:
            db.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (store.now(), session_id))
        return cursor.rowcount


# --- the journal -----------------------------------------------------------------------------


def journal_begin_attempt(store: Store, account: str, chat_jid: str, message_id: str) -> JournalEntry:
    with store.write() as db:
        entry = require_entry(db, account, chat_jid, message_id)
        if entry.state is not JournalState.PENDING:
            raise JournalStateError(
                f"Message {entry.message_id} in {entry.chat_jid} is {entry.state}, not pending: "
                "only pending messages are processed."
            )
        return update_entry(db, entry, store.now(), attempts=entry.attempts + 1)


def journal_mark_answered(
    store: Store,
    account: str,
    chat_jid: str,
    message_id: str,
    *,
    reply_message_id: str | None = None,
    reply_text: str | None = None,
) -> JournalEntry:
    with store.write() as db:
        entry = require_entry(db, account, chat_jid, message_id)
        if entry.state is JournalState.ANSWERED and entry.reply_message_id == reply_message_id:
            return entry
        check_open(entry, JournalState.ANSWERED)
        return update_entry(
            db,
            entry,
            store.now(),
            state=JournalState.ANSWERED,
            reply_message_id=reply_message_id,
            reply_text=reply_text,
            error=None,
        )


def journal_retry(store: Store, account: str, chat_jid: str, message_id: str) -> JournalEntry:
    with store.write() as db:
        entry = require_entry(db, account, chat_jid, message_id)
        if entry.state is JournalState.PENDING:
            return entry
        if entry.state is not JournalState.FAILED:
            raise JournalStateError(
                f"Message {entry.message_id} in {entry.chat_jid} was already {entry.state}: "
                "only a failed message can be retried."
            )
        return update_entry(db, entry, store.now(), state=JournalState.PENDING)


def journal_counts(store: Store, account: str | None = None) -> dict[JournalState, int]:
    counts = dict.fromkeys(JournalState, 0)
    with store.read() as db:
        if account is None:
            rows = db.execute("SELECT state, count(*) FROM inbound_journal GROUP BY state").fetchall()
        else:
            rows = db.execute(
                "SELECT state, count(*) FROM inbound_journal WHERE account = ? GROUP BY state",
                (validate.normalize_account(account),),
            ).fetchall()
    for state, count in rows:
        counts[JournalState(state)] = int(count)
    return counts


def journal_prune(store: Store, before: datetime) -> int:
    cutoff = encode_time(validate.aware(before, "before"))
    with store.write() as db:
        return db.execute(
            "DELETE FROM inbound_journal WHERE state IN ('answered', 'skipped') AND received_at < ?", (cutoff,)
        ).rowcount


# --- the outbox ------------------------------------------------------------------------------


def outbox_get(store: Store, item_id: int) -> OutboxItem:
    with store.read() as db:
        return require_item(db, item_id)


def outbox_mark_failed(store: Store, item_id: int, error: str) -> OutboxItem:
    with store.write() as db:
        item = require_item(db, item_id)
        if item.state is OutboxState.SENT:
            raise InvalidInput(f"Outbox item {item_id} was already sent: there is nothing to retry.")
        db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?", (str(error), item.id))
        return require_item(db, item_id)


def outbox_prune(store: Store, before: datetime) -> int:
    cutoff = encode_time(validate.aware(before, "before"))
    with store.write() as db:
        return db.execute("DELETE FROM outbox WHERE state = 'sent' AND sent_at < ?", (cutoff,)).rowcount
