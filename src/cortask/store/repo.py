"""The store API: synchronous, one SQLite connection, every method one transaction.

`Store` is safe to share between threads (an internal lock serialises the connection), but it
blocks: from asyncio use `AsyncStore` (cortask.store.aio), which runs these same methods on a
single worker thread.

Methods that take a ``workspace_id`` raise NotFound when there is no such workspace. Several
calls can be made atomic together with ``with store.transaction(): ...``.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from cortask.contacts.access import AccessPolicy, Permission, TrustedContact
from cortask.store import decode, validate
from cortask.store.db import connect, default_database_path, encode_time
from cortask.store.errors import (
    DatabaseFailed,
    Duplicate,
    InvalidInput,
    JournalStateError,
    LastWorkspace,
    NotFound,
    StoreBusy,
    StoreClosed,
)
from cortask.store.masking import mask_secrets, restore_masked
from cortask.store.models import (
    AgentSettings,
    ChatMapping,
    HistoryMessage,
    JournalEntry,
    JournalState,
    JSONValue,
    OutboxItem,
    OutboxState,
    Role,
    Session,
    WhatsAppSettings,
    Workspace,
)

__all__ = ["DEFAULT_WORKSPACE_NAME", "UNSET", "Store", "Unset"]

DEFAULT_WORKSPACE_NAME = "Personal"

Clock = Callable[[], datetime]


class Unset(enum.Enum):
    """Marks an argument that was not passed, as distinct from None ("clear this setting")."""

    UNSET = "UNSET"


UNSET: Final = Unset.UNSET


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Store:
    """Cortask's state: workspaces, channel and agent settings, chats, sessions, journal, outbox."""

    def __init__(self, conn: sqlite3.Connection, *, path: Path, clock: Clock = _utcnow) -> None:
        conn.row_factory = sqlite3.Row
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._clock = clock
        self._lock = threading.RLock()
        self._depth = 0  # nesting of transaction(): the outermost BEGINs, inner ones use savepoints

    @classmethod
    def open(
        cls,
        path: Path | str | None = None,
        *,
        environ: Mapping[str, str] = os.environ,
        clock: Clock = _utcnow,
    ) -> Store:
        """Open the database (default ``$CORTASK_HOME/cortask.db``), migrate it, make sure a workspace exists."""
        db_path = Path(path).expanduser() if path is not None else default_database_path(environ)
        store = cls(connect(db_path), path=db_path, clock=clock)
        try:
            store.ensure_default_workspace()
        except BaseException:
            store.close()
            raise
        return store

    @property
    def path(self) -> Path:
        return self._path

    @property
    def closed(self) -> bool:
        return self._conn is None

    def close(self) -> None:
        """Close the connection (checkpointing the WAL). Idempotent."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions -----------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Make the store calls inside one atomic write: all of them are committed, or none.

        Nests: an inner block that raises is rolled back to where it started (a savepoint), and
        the outer block decides about the rest.
        """
        with self._write():
            yield

    def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._tx("BEGIN IMMEDIATE")

    def _read(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._tx("BEGIN")

    @contextlib.contextmanager
    def _tx(self, begin: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StoreClosed("The Cortask store is closed: open it again with Store.open().")
            if self._depth:
                yield from self._savepoint(conn)
                return
            try:
                conn.execute(begin)
                self._depth = 1
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
                finally:
                    self._depth = 0
            except sqlite3.OperationalError as exc:
                raise self._failed(exc) from exc

    def _savepoint(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        name = f"sp{self._depth}"
        conn.execute(f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield conn
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        else:
            conn.execute(f"RELEASE {name}")
        finally:
            self._depth -= 1

    def _failed(self, exc: sqlite3.OperationalError) -> DatabaseFailed:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return StoreBusy(
                f"The Cortask database {self._path} is locked by another process: try again, "
                "and if it keeps happening stop the other Cortask process."
            )
        return DatabaseFailed(
            f"The Cortask database {self._path} could not be used ({text}): check free disk space and the "
            "file's permissions, then try again."
        )

    def _now(self) -> str:
        return encode_time(self._clock())

    # --- workspaces -------------------------------------------------------------------------

    def ensure_default_workspace(self) -> Workspace:
        """The first workspace, creating "Personal" when there is none (so on first run only)."""
        with self._write() as db:
            if db.execute("SELECT 1 FROM workspaces LIMIT 1").fetchone() is None:
                db.execute(
                    "INSERT INTO workspaces (name, created_at) VALUES (?, ?)", (DEFAULT_WORKSPACE_NAME, self._now())
                )
            return self.default_workspace()

    def create_workspace(self, name: str) -> Workspace:
        clean = validate.workspace_name(name)
        with self._write() as db:
            try:
                cursor = db.execute("INSERT INTO workspaces (name, created_at) VALUES (?, ?)", (clean, self._now()))
            except sqlite3.IntegrityError:
                raise Duplicate(f"There is already a workspace called “{clean}”: choose another name.") from None
            return self.get_workspace(_lastrowid(cursor))

    def get_workspace(self, workspace_id: int) -> Workspace:
        with self._read() as db:
            row = db.execute("SELECT * FROM workspaces WHERE id = ?", (workspace_id,)).fetchone()
        if row is None:
            raise _no_workspace(workspace_id)
        return decode.workspace(row)

    def find_workspace(self, name: str) -> Workspace | None:
        """The workspace with this name (case-insensitive), if any."""
        with self._read() as db:
            row = db.execute("SELECT * FROM workspaces WHERE name = ?", (name.strip(),)).fetchone()
        return decode.workspace(row) if row is not None else None

    def list_workspaces(self) -> list[Workspace]:
        """All workspaces, oldest first."""
        with self._read() as db:
            return [decode.workspace(row) for row in db.execute("SELECT * FROM workspaces ORDER BY id")]

    def default_workspace(self) -> Workspace:
        """The first workspace: where chats that are not mapped anywhere go."""
        with self._read() as db:
            row = db.execute("SELECT * FROM workspaces ORDER BY id LIMIT 1").fetchone()
        if row is None:  # only between opening a new file and ensure_default_workspace()
            raise NotFound("There is no workspace yet: create one first.")
        return decode.workspace(row)

    def rename_workspace(self, workspace_id: int, name: str) -> Workspace:
        clean = validate.workspace_name(name)
        with self._write() as db:
            self._require_workspace(db, workspace_id)
            try:
                db.execute("UPDATE workspaces SET name = ? WHERE id = ?", (clean, workspace_id))
            except sqlite3.IntegrityError:
                raise Duplicate(f"There is already a workspace called “{clean}”: choose another name.") from None
            return self.get_workspace(workspace_id)

    def delete_workspace(self, workspace_id: int) -> None:
        """Delete a workspace with its channel and agent settings and chat mappings.

        Its chats then go to the first remaining workspace. Sessions and the journal are kept:
        they belong to chats, not to workspaces. The last workspace cannot be deleted.
        """
        with self._write() as db:
            workspace = self._require_workspace(db, workspace_id)
            (count,) = db.execute("SELECT count(*) FROM workspaces").fetchone()
            if count <= 1:
                raise LastWorkspace(
                    f"“{workspace.name}” is the only workspace and cannot be deleted: create another one first."
                )
            db.execute("DELETE FROM workspaces WHERE id = ?", (workspace_id,))

    def _require_workspace(self, db: sqlite3.Connection, workspace_id: int) -> Workspace:
        row = db.execute("SELECT * FROM workspaces WHERE id = ?", (workspace_id,)).fetchone()
        if row is None:
            raise _no_workspace(workspace_id)
        return decode.workspace(row)

    # --- the WhatsApp channel ---------------------------------------------------------------

    def whatsapp_settings(self, workspace_id: int) -> WhatsAppSettings:
        """The channel's settings; defaults (not enabled, nobody trusted) if it was never added."""
        with self._read() as db:
            self._require_workspace(db, workspace_id)
            row = db.execute("SELECT * FROM whatsapp_settings WHERE workspace_id = ?", (workspace_id,)).fetchone()
            contacts = self._contacts(db, workspace_id)
            allowed = self._allowed(db, workspace_id)
        if row is None:
            return WhatsAppSettings(workspace_id, trusted_contacts=contacts, allowed_users=allowed)
        return WhatsAppSettings(
            workspace_id=workspace_id,
            enabled=bool(row["enabled"]),
            paused=bool(row["paused"]),
            trusted_contacts=contacts,
            allowed_users=allowed,
            answer_groups=bool(row["answer_groups"]),
            open_to_everyone=bool(row["open_to_everyone"]),
            default_region=row["default_region"],
            auth_dir=Path(row["auth_dir"]) if row["auth_dir"] is not None else None,
        )

    def access_policy(self, workspace_id: int) -> AccessPolicy:
        """Who may reach the agent through this workspace's WhatsApp channel, right now."""
        return self.whatsapp_settings(workspace_id).access_policy()

    def whatsapp_workspaces(self) -> list[Workspace]:
        """The workspaces that have added the WhatsApp channel, oldest first."""
        with self._read() as db:
            rows = db.execute(
                "SELECT w.* FROM workspaces w JOIN whatsapp_settings s ON s.workspace_id = w.id "
                "WHERE s.enabled = 1 ORDER BY w.id"
            ).fetchall()
        return [decode.workspace(row) for row in rows]

    def set_whatsapp_enabled(self, workspace_id: int, enabled: bool = True) -> WhatsAppSettings:
        """Add (True) or remove (False) the WhatsApp channel; its other settings are kept either way."""
        with self._write() as db:
            self._require_workspace(db, workspace_id)
            self._ensure_whatsapp_row(db, workspace_id)
            db.execute(
                "UPDATE whatsapp_settings SET enabled = ?, updated_at = ? WHERE workspace_id = ?",
                (int(enabled), self._now(), workspace_id),
            )
            return self.whatsapp_settings(workspace_id)

    def set_whatsapp_paused(self, workspace_id: int, paused: bool = True) -> WhatsAppSettings:
        """Pause (True) or resume (False) the channel: a paused channel keeps its link but the
        service does not connect it until it is resumed."""
        with self._write() as db:
            self._require_workspace(db, workspace_id)
            self._ensure_whatsapp_row(db, workspace_id)
            db.execute(
                "UPDATE whatsapp_settings SET paused = ?, updated_at = ? WHERE workspace_id = ?",
                (int(validate.boolean("paused", paused)), self._now(), workspace_id),
            )
            return self.whatsapp_settings(workspace_id)

    def update_whatsapp_settings(
        self,
        workspace_id: int,
        *,
        answer_groups: bool | Unset = UNSET,
        open_to_everyone: bool | Unset = UNSET,
        default_region: str | Unset | None = UNSET,
        auth_dir: Path | str | Unset | None = UNSET,
    ) -> WhatsAppSettings:
        """Change the given settings and keep the others. None clears `default_region` / `auth_dir`."""
        changes: dict[str, object] = {}
        if answer_groups is not UNSET:
            changes["answer_groups"] = int(validate.boolean("answer_groups", answer_groups))
        if open_to_everyone is not UNSET:
            changes["open_to_everyone"] = int(validate.boolean("open_to_everyone", open_to_everyone))
        if default_region is not UNSET:
            changes["default_region"] = validate.region(default_region)
        if auth_dir is not UNSET:
            changes["auth_dir"] = validate.auth_dir(auth_dir)
        with self._write() as db:
            self._require_workspace(db, workspace_id)
            self._ensure_whatsapp_row(db, workspace_id)
            if changes:
                columns = ", ".join(f"{name} = ?" for name in changes)  # names are ours, not the caller's
                db.execute(
                    f"UPDATE whatsapp_settings SET {columns}, updated_at = ? WHERE workspace_id = ?",
                    (*changes.values(), self._now(), workspace_id),
                )
            return self.whatsapp_settings(workspace_id)

    def trusted_contacts(self, workspace_id: int) -> tuple[TrustedContact, ...]:
        """The trusted contacts in the order they were added."""
        with self._read() as db:
            self._require_workspace(db, workspace_id)
            return self._contacts(db, workspace_id)

    def add_trusted_contact(
        self,
        workspace_id: int,
        phone: str,
        permission: Permission | str = Permission.WRITE,
        name: str | None = None,
    ) -> TrustedContact:
        """Trust a number as typed; it is normalised with the workspace's default region."""
        perm = validate.permission(permission)
        with self._write() as db:
            self._require_workspace(db, workspace_id)
            number = validate.phone(phone, self._region(db, workspace_id))
            contact = TrustedContact(number, perm, validate.contact_name(name))
            try:
                db.execute(
                    "INSERT INTO whatsapp_trusted_contacts (workspace_id, phone, name, permission, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (workspace_id, contact.phone, contact.name, contact.permission.value, self._now()),
                )
            except sqlite3.IntegrityError:
                raise Duplicate(
                    f"{number} is already a trusted contact in this workspace: change its permission or name instead."
                ) from None
            return contact

    def update_trusted_contact(
        self,
        workspace_id: int,
        phone: str,
        *,
        permission: Permission | str | Unset = UNSET,
        name: str | Unset | None = UNSET,
    ) -> TrustedContact:
        """Change a contact's permission and/or name (None removes the name)."""
        with self._write() as db:
            self._require_workspace(db, workspace_id)
            number = validate.phone(phone, self._region(db, workspace_id))
            row = db.execute(
                "SELECT * FROM whatsapp_trusted_contacts WHERE workspace_id = ? AND phone = ?", (workspace_id, number)
            ).fetchone()
            if row is None:
                raise NotFound(f"{number} is not a trusted contact in this workspace: add it first.")
            current = decode.contact(row)
            contact = TrustedContact(
                number,
                current.permission if permission is UNSET else validate.permission(permission),
                current.name if name is UNSET else validate.contact_name(name),
            )
            db.execute(
                "UPDATE whatsapp_trusted_contacts SET permission = ?, name = ? WHERE id = ?",
                (contact.permission.value, contact.name, row["id"]),
            )
            return contact

    def remove_trusted_contact(self, workspace_id: int, phone: str) -> bool:
        """Stop trusting a number; False when it was not a trusted contact."""
        with self._write() as db:
            self._require_workspace(db, workspace_id)
            number = validate.phone(phone, self._region(db, workspace_id))
            cursor = db.execute(
                "DELETE FROM whatsapp_trusted_contacts WHERE workspace_id = ? AND phone = ?", (workspace_id, number)
            )
            return cursor.rowcount > 0

    def allowed_users(self, workspace_id: int) -> tuple[str, ...]:
        """The legacy allowedUsers list, entries exactly as stored, in order."""
        with self._read() as db:
            self._require_workspace(db, workspace_id)
            return self._allowed(db, workspace_id)

    def set_allowed_users(self, workspace_id: int, entries: Iterable[str | int]) -> tuple[str, ...]:
        """Replace the legacy allowedUsers list.

        Entries are kept as typed (trimmed; blank ones dropped) and in order, including ones that
        are not usable phone numbers: the access policy reports those as problems instead.
        """
        clean = tuple(text for text in (str(entry).strip() for entry in entries) if text)
        with self._write() as db:
            self._require_workspace(db, workspace_id)
            db.execute("DELETE FROM whatsapp_allowed_users WHERE workspace_id = ?", (workspace_id,))
            db.executemany(
                "INSERT INTO whatsapp_allowed_users (workspace_id, position, entry) VALUES (?, ?, ?)",
                [(workspace_id, position, entry) for position, entry in enumerate(clean)],
            )
            return clean

    def _ensure_whatsapp_row(self, db: sqlite3.Connection, workspace_id: int) -> None:
        db.execute(
            "INSERT OR IGNORE INTO whatsapp_settings (workspace_id, updated_at) VALUES (?, ?)",
            (workspace_id, self._now()),
        )

    @staticmethod
    def _region(db: sqlite3.Connection, workspace_id: int) -> str | None:
        row = db.execute(
            "SELECT default_region FROM whatsapp_settings WHERE workspace_id = ?", (workspace_id,)
        ).fetchone()
        return row[0] if row is not None else None

    @staticmethod
    def _contacts(db: sqlite3.Connection, workspace_id: int) -> tuple[TrustedContact, ...]:
        rows = db.execute("SELECT * FROM whatsapp_trusted_contacts WHERE workspace_id = ? ORDER BY id", (workspace_id,))
        return tuple(decode.contact(row) for row in rows)

    @staticmethod
    def _allowed(db: sqlite3.Connection, workspace_id: int) -> tuple[str, ...]:
        rows = db.execute(
            "SELECT entry FROM whatsapp_allowed_users WHERE workspace_id = ? ORDER BY position", (workspace_id,)
        )
        return tuple(row[0] for row in rows)

    # --- agent settings ---------------------------------------------------------------------

    def agent_settings(self, workspace_id: int) -> AgentSettings | None:
        """The agent's settings with their secrets, for the agent itself; None if never configured."""
        with self._read() as db:
            self._require_workspace(db, workspace_id)
            row = db.execute("SELECT * FROM agent_settings WHERE workspace_id = ?", (workspace_id,)).fetchone()
        return decode.agent_settings(row) if row is not None else None

    def agent_settings_for_display(self, workspace_id: int) -> AgentSettings | None:
        """The same with every secret (API keys, tokens, passwords) replaced by the mask."""
        settings = self.agent_settings(workspace_id)
        if settings is None:
            return None
        return AgentSettings(
            settings.workspace_id,
            settings.provider,
            MappingProxyType(mask_secrets(settings.settings)),
            settings.updated_at,
        )

    def set_agent_settings(
        self,
        workspace_id: int,
        provider: str,
        settings: Mapping[str, JSONValue],
        *,
        keep_masked: bool = True,
    ) -> AgentSettings:
        """Choose the agent and replace its settings.

        With `keep_masked`, a secret whose value is still the mask (the UI sent back what
        `agent_settings_for_display` showed) keeps its stored value.
        """
        name = provider.strip() if isinstance(provider, str) else ""
        if not name:
            raise InvalidInput("Choose an agent provider: the provider name is empty.")
        if not isinstance(settings, Mapping) or not all(isinstance(key, str) for key in settings):
            raise InvalidInput("Agent settings must be an object whose keys are strings.")
        with self._write() as db:
            self._require_workspace(db, workspace_id)
            values = dict(settings)
            if keep_masked:
                row = db.execute(
                    "SELECT settings FROM agent_settings WHERE workspace_id = ?", (workspace_id,)
                ).fetchone()
                if row is not None:
                    values = restore_masked(values, json.loads(row[0]))
            try:
                encoded = json.dumps(values, allow_nan=False, ensure_ascii=False, sort_keys=True)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(
                    f"Agent settings must be plain JSON (text, numbers, true/false, lists, objects): {exc}."
                ) from None
            db.execute(
                "INSERT INTO agent_settings (workspace_id, provider, settings, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (workspace_id) DO UPDATE SET provider = excluded.provider, "
                "settings = excluded.settings, updated_at = excluded.updated_at",
                (workspace_id, name, encoded, self._now()),
            )
            row = db.execute("SELECT * FROM agent_settings WHERE workspace_id = ?", (workspace_id,)).fetchone()
            return decode.agent_settings(row)

    def clear_agent_settings(self, workspace_id: int) -> bool:
        with self._write() as db:
            self._require_workspace(db, workspace_id)
            return db.execute("DELETE FROM agent_settings WHERE workspace_id = ?", (workspace_id,)).rowcount > 0

    # --- chats ------------------------------------------------------------------------------

    def map_chat(self, chat_jid: str, workspace_id: int) -> ChatMapping:
        """Send this chat's messages to a workspace (replacing an earlier mapping)."""
        jid = validate.required("chat JID", chat_jid)
        with self._write() as db:
            self._require_workspace(db, workspace_id)
            db.execute(
                "INSERT INTO chat_workspaces (chat_jid, workspace_id, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (chat_jid) DO UPDATE SET workspace_id = excluded.workspace_id, "
                "created_at = excluded.created_at",
                (jid, workspace_id, self._now()),
            )
            row = db.execute("SELECT * FROM chat_workspaces WHERE chat_jid = ?", (jid,)).fetchone()
            return decode.chat_mapping(row)

    def unmap_chat(self, chat_jid: str) -> bool:
        """Let the chat go to the first workspace again; False when it was not mapped."""
        with self._write() as db:
            return db.execute("DELETE FROM chat_workspaces WHERE chat_jid = ?", (chat_jid,)).rowcount > 0

    def chat_mappings(self, workspace_id: int | None = None) -> list[ChatMapping]:
        """Explicit mappings, all or one workspace's, by chat JID."""
        with self._read() as db:
            if workspace_id is None:
                rows = db.execute("SELECT * FROM chat_workspaces ORDER BY chat_jid").fetchall()
            else:
                self._require_workspace(db, workspace_id)
                rows = db.execute(
                    "SELECT * FROM chat_workspaces WHERE workspace_id = ? ORDER BY chat_jid", (workspace_id,)
                ).fetchall()
        return [decode.chat_mapping(row) for row in rows]

    def workspace_for_chat(self, chat_jid: str) -> Workspace:
        """The workspace a chat is mapped to, or the first workspace when it is not mapped."""
        with self._read() as db:
            row = db.execute(
                "SELECT w.* FROM chat_workspaces c JOIN workspaces w ON w.id = c.workspace_id WHERE c.chat_jid = ?",
                (chat_jid,),
            ).fetchone()
            return decode.workspace(row) if row is not None else self.default_workspace()

    # --- sessions and history ---------------------------------------------------------------

    def ensure_session(self, session_id: str) -> Session:
        sid = validate.required("session id", session_id)
        with self._write() as db:
            now = self._now()
            db.execute("INSERT OR IGNORE INTO sessions (id, created_at, updated_at) VALUES (?, ?, ?)", (sid, now, now))
            row = db.execute("SELECT * FROM sessions WHERE id = ?", (sid,)).fetchone()
            return decode.session(row)

    def get_session(self, session_id: str) -> Session | None:
        with self._read() as db:
            row = db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return decode.session(row) if row is not None else None

    def list_sessions(self) -> list[Session]:
        """All sessions, most recently active first."""
        with self._read() as db:
            return [decode.session(row) for row in db.execute("SELECT * FROM sessions ORDER BY updated_at DESC, id")]

    def append_message(
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
        when = encode_time(validate.aware(at, "at")) if at is not None else self._now()
        with self._write() as db:
            session = self.ensure_session(session_id)
            cursor = db.execute(
                "INSERT INTO messages (session_id, role, text, at, message_id) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (session_id, message_id) WHERE message_id IS NOT NULL DO NOTHING",
                (session.id, turn_role.value, text, when, message_id),
            )
            if cursor.rowcount:
                db.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (self._now(), session.id))
                row = db.execute("SELECT * FROM messages WHERE seq = ?", (_lastrowid(cursor),)).fetchone()
            else:
                row = db.execute(
                    "SELECT * FROM messages WHERE session_id = ? AND message_id = ?", (session.id, message_id)
                ).fetchone()
            return decode.message(row)

    def has_message(self, session_id: str, message_id: str) -> bool:
        """Whether the session already holds the turn with this WhatsApp message id."""
        with self._read() as db:
            row = db.execute(
                "SELECT 1 FROM messages WHERE session_id = ? AND message_id = ?", (session_id, message_id)
            ).fetchone()
        return row is not None

    def history(self, session_id: str, limit: int | None = None) -> list[HistoryMessage]:
        """The last `limit` turns (all when None), oldest first."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InvalidInput(f"limit must be a whole number of turns, 0 or more (got {limit!r}).")
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM (SELECT * FROM messages WHERE session_id = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                (session_id, -1 if limit is None else limit),
            ).fetchall()
        return [decode.message(row) for row in rows]

    def clear_history(self, session_id: str) -> int:
        """Forget a session's turns (the session stays); returns how many were removed."""
        with self._write() as db:
            cursor = db.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
            if cursor.rowcount:
                db.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (self._now(), session_id))
            return cursor.rowcount

    # --- the inbound journal ----------------------------------------------------------------

    def journal_record(
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
        now = self._now()
        arrived = encode_time(validate.aware(received_at, "received_at")) if received_at is not None else now
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO inbound_journal (account, chat_jid, message_id, sender, text, received_at, message_ts, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, chat_jid, message_id) DO NOTHING",
                (*key, validate.required("sender", sender), text, arrived, stamp, now),
            )
            return cursor.rowcount > 0

    def journal_get(self, account: str, chat_jid: str, message_id: str) -> JournalEntry | None:
        key = validate.journal_key(account, chat_jid, message_id)
        with self._read() as db:
            row = db.execute(
                "SELECT * FROM inbound_journal WHERE account = ? AND chat_jid = ? AND message_id = ?", key
            ).fetchone()
        return decode.journal_entry(row) if row is not None else None

    def journal_begin_attempt(self, account: str, chat_jid: str, message_id: str) -> JournalEntry:
        """Count an attempt to process a pending message (before running the agent).

        After a crash the count tells how often processing was started, so a message that keeps
        crashing the service can be given up on instead of replayed forever.
        """
        with self._write() as db:
            entry = self._journal_entry(db, account, chat_jid, message_id)
            if entry.state is not JournalState.PENDING:
                raise JournalStateError(
                    f"Message {entry.message_id} in {entry.chat_jid} is {entry.state}, not pending: "
                    "only pending messages are processed (journal_retry makes a failed one pending again)."
                )
            return self._journal_update(db, entry, attempts=entry.attempts + 1)

    def journal_mark_answered(
        self,
        account: str,
        chat_jid: str,
        message_id: str,
        *,
        reply_message_id: str | None = None,
        reply_text: str | None = None,
    ) -> JournalEntry:
        """The reply was sent. Final. Marking it answered again with the same reply id changes nothing."""
        with self._write() as db:
            entry = self._journal_entry(db, account, chat_jid, message_id)
            if entry.state is JournalState.ANSWERED and entry.reply_message_id == reply_message_id:
                return entry
            self._check_open(entry, JournalState.ANSWERED)
            return self._journal_update(
                db,
                entry,
                state=JournalState.ANSWERED,
                reply_message_id=reply_message_id,
                reply_text=reply_text,
                error=None,
            )

    def journal_mark_failed(self, account: str, chat_jid: str, message_id: str, error: str) -> JournalEntry:
        """Processing failed; the entry leaves the pending list until `journal_retry`."""
        with self._write() as db:
            entry = self._journal_entry(db, account, chat_jid, message_id)
            self._check_open(entry, JournalState.FAILED)
            return self._journal_update(db, entry, state=JournalState.FAILED, error=str(error))

    def journal_mark_skipped(self, account: str, chat_jid: str, message_id: str, reason: str) -> JournalEntry:
        """Deliberately not answered (e.g. too old when replayed). Final; skipping again changes nothing."""
        with self._write() as db:
            entry = self._journal_entry(db, account, chat_jid, message_id)
            if entry.state is JournalState.SKIPPED:
                return entry
            self._check_open(entry, JournalState.SKIPPED)
            return self._journal_update(db, entry, state=JournalState.SKIPPED, reason=str(reason))

    def journal_retry(self, account: str, chat_jid: str, message_id: str) -> JournalEntry:
        """Make a failed entry pending again (the error stays until it is answered)."""
        with self._write() as db:
            entry = self._journal_entry(db, account, chat_jid, message_id)
            if entry.state is JournalState.PENDING:
                return entry
            if entry.state is not JournalState.FAILED:
                raise JournalStateError(
                    f"Message {entry.message_id} in {entry.chat_jid} was already {entry.state}: "
                    "only a failed message can be retried."
                )
            return self._journal_update(db, entry, state=JournalState.PENDING)

    def journal_pending(self, account: str | None = None, *, chat_jid: str | None = None) -> list[JournalEntry]:
        """Pending entries in arrival order (so each chat's are in its own arrival order)."""
        sql = "SELECT * FROM inbound_journal WHERE state = 'pending'"
        params: list[str] = []
        if account is not None:
            sql += " AND account = ?"
            params.append(validate.normalize_account(account))
        if chat_jid is not None:
            sql += " AND chat_jid = ?"
            params.append(chat_jid)
        with self._read() as db:
            rows = db.execute(sql + " ORDER BY seq", params).fetchall()
        return [decode.journal_entry(row) for row in rows]

    def journal_counts(self, account: str | None = None) -> dict[JournalState, int]:
        """How many entries are in each state (every state is present, 0 when none)."""
        counts = dict.fromkeys(JournalState, 0)
        with self._read() as db:
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

    def journal_prune(self, before: datetime) -> int:
        """Forget answered and skipped entries received before `before`; returns how many.

        Pending and failed ones are kept. A pruned message id is no longer recognised as a
        duplicate, so keep well more than WhatsApp's redelivery window (days, not minutes).
        """
        cutoff = encode_time(validate.aware(before, "before"))
        with self._write() as db:
            cursor = db.execute(
                "DELETE FROM inbound_journal WHERE state IN ('answered', 'skipped') AND received_at < ?", (cutoff,)
            )
            return cursor.rowcount

    def _journal_entry(self, db: sqlite3.Connection, account: str, chat_jid: str, message_id: str) -> JournalEntry:
        key = validate.journal_key(account, chat_jid, message_id)
        row = db.execute(
            "SELECT * FROM inbound_journal WHERE account = ? AND chat_jid = ? AND message_id = ?", key
        ).fetchone()
        if row is None:
            raise NotFound(
                f"Message {message_id} in {chat_jid} is not in the journal: record it with journal_record() first."
            )
        return decode.journal_entry(row)

    @staticmethod
    def _check_open(entry: JournalEntry, target: JournalState) -> None:
        if entry.state.is_final:
            raise JournalStateError(
                f"Message {entry.message_id} in {entry.chat_jid} was already {entry.state} and cannot be marked "
                f"{target}: it is finished and must not be processed again."
            )

    _JOURNAL_COLUMNS = frozenset({"state", "attempts", "reply_message_id", "reply_text", "error", "reason"})

    def _journal_update(self, db: sqlite3.Connection, entry: JournalEntry, **changes: Any) -> JournalEntry:
        assert changes.keys() <= self._JOURNAL_COLUMNS
        values = {key: value.value if isinstance(value, JournalState) else value for key, value in changes.items()}
        columns = ", ".join(f"{name} = ?" for name in values)
        db.execute(
            f"UPDATE inbound_journal SET {columns}, updated_at = ? WHERE seq = ?",
            (*values.values(), self._now(), entry.seq),
        )
        row = db.execute("SELECT * FROM inbound_journal WHERE seq = ?", (entry.seq,)).fetchone()
        return decode.journal_entry(row)

    # --- the outbox -------------------------------------------------------------------------

    def outbox_enqueue(
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
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO outbox (chat_jid, text, in_reply_to, account, created_at, message_id) "
                "VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (chat_jid, in_reply_to) WHERE in_reply_to IS NOT NULL DO NOTHING",
                (jid, text, in_reply_to, owner, self._now(), message_id),
            )
            if cursor.rowcount:
                row = db.execute("SELECT * FROM outbox WHERE id = ?", (_lastrowid(cursor),)).fetchone()
            else:
                row = db.execute(
                    "SELECT * FROM outbox WHERE chat_jid = ? AND in_reply_to = ?", (jid, in_reply_to)
                ).fetchone()
            return decode.outbox_item(row)

    def outbox_get(self, item_id: int) -> OutboxItem:
        with self._read() as db:
            return self._outbox_item(db, item_id)

    def outbox_pending(self, chat_jid: str | None = None) -> list[OutboxItem]:
        """Items still to send, in the order they were queued."""
        with self._read() as db:
            if chat_jid is None:
                rows = db.execute("SELECT * FROM outbox WHERE state = 'pending' ORDER BY id").fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM outbox WHERE state = 'pending' AND chat_jid = ? ORDER BY id", (chat_jid,)
                ).fetchall()
        return [decode.outbox_item(row) for row in rows]

    def outbox_mark_sent(self, item_id: int, sent_message_id: str) -> bool:
        """Record that the item was sent. True the first time; False if it was already marked sent.

        In the same transaction, the journal entry it answers (when the item has an account and
        `in_reply_to`, and the entry is not finished) is marked answered with this message.
        """
        sent_id = validate.required("sent message id", sent_message_id)
        with self._write() as db:
            item = self._outbox_item(db, item_id)
            if item.state is OutboxState.SENT:
                return False
            db.execute(
                "UPDATE outbox SET state = 'sent', sent_message_id = ?, sent_at = ? WHERE id = ? AND state = 'pending'",
                (sent_id, self._now(), item.id),
            )
            if item.account is not None and item.in_reply_to is not None:
                entry = self.journal_get(item.account, item.chat_jid, item.in_reply_to)
                if entry is not None and not entry.state.is_final:
                    self._journal_update(
                        db,
                        entry,
                        state=JournalState.ANSWERED,
                        reply_message_id=sent_id,
                        reply_text=item.text,
                        error=None,
                    )
            return True

    def outbox_mark_failed(self, item_id: int, error: str) -> OutboxItem:
        """A send attempt failed; the item stays pending with the attempt counted."""
        with self._write() as db:
            item = self._outbox_item(db, item_id)
            if item.state is OutboxState.SENT:
                raise InvalidInput(f"Outbox item {item_id} was already sent: there is nothing to retry.")
            db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?", (str(error), item.id))
            return self._outbox_item(db, item_id)

    def outbox_prune(self, before: datetime) -> int:
        """Forget items sent before `before`; returns how many."""
        cutoff = encode_time(validate.aware(before, "before"))
        with self._write() as db:
            return db.execute("DELETE FROM outbox WHERE state = 'sent' AND sent_at < ?", (cutoff,)).rowcount

    @staticmethod
    def _outbox_item(db: sqlite3.Connection, item_id: int) -> OutboxItem:
        row = db.execute("SELECT * FROM outbox WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise NotFound(f"There is no outbox item {item_id}: list pending items with outbox_pending().")
        return decode.outbox_item(row)


def _no_workspace(workspace_id: int) -> NotFound:
    return NotFound(f"There is no workspace with id {workspace_id!r}: choose one from the list of workspaces.")


def _lastrowid(cursor: sqlite3.Cursor) -> int:
    rowid = cursor.lastrowid
    assert rowid is not None
    return rowid
