"""The WhatsApp channel of a workspace: added or not, paused, its settings, who may reach the agent.

Every method raises NotFound for an unknown ``workspace_id``. Phone numbers are normalised with
the workspace's default region before they are stored or looked up.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from cortask.contacts.access import AccessPolicy, Permission, Registration, TrustedContact, WhatsAppState
from cortask.store import decode, validate
from cortask.store.base import M, Repository, offloadable, readonly
from cortask.store.db import encode_time
from cortask.store.errors import Duplicate, NotFound
from cortask.store.models import UNSET, Unset, WhatsAppSettings
from cortask.store.workspaces import require_workspace

__all__ = ["WhatsAppRepository", "allowed_users_of", "read_settings"]


class WhatsAppRepository(Repository[M]):
    @readonly
    def settings(self, workspace_id: int) -> WhatsAppSettings:
        """The channel's settings; defaults (not enabled, nobody trusted) if it was never added."""
        with self._db.read() as db:
            return read_settings(db, workspace_id)

    @readonly
    def access_policy(self, workspace_id: int) -> AccessPolicy:
        """Who may reach the agent through this workspace's WhatsApp channel, right now."""
        with self._db.read() as db:
            return read_settings(db, workspace_id).access_policy()

    @offloadable
    def set_enabled(self, workspace_id: int, enabled: bool = True) -> WhatsAppSettings:
        """Add (True) or remove (False) the WhatsApp channel; its other settings are kept either way."""
        return self._set(workspace_id, {"enabled": int(enabled)})

    @offloadable
    def set_paused(self, workspace_id: int, paused: bool = True) -> WhatsAppSettings:
        """Pause (True) or resume (False) the channel: a paused channel keeps its link but the
        service does not connect it until it is resumed."""
        return self._set(workspace_id, {"paused": int(validate.boolean("paused", paused))})

    @offloadable
    def update_settings(
        self,
        workspace_id: int,
        *,
        answer_groups: bool | Unset = UNSET,
        open_to_everyone: bool | Unset = UNSET,
        default_region: str | Unset | None = UNSET,
        auth_dir: Path | str | Unset | None = UNSET,
        self_chat: bool | Unset = UNSET,
        self_chat_prefix: str | Unset | None = UNSET,
        answers_paused: bool | Unset = UNSET,
        group_mode: str | Unset = UNSET,
        groups_allowed: Iterable[str] | Unset = UNSET,
        approvals: bool | Unset = UNSET,
        approval_hours: float | Unset = UNSET,
    ) -> WhatsAppSettings:
        """Change the given settings and keep the others. None clears `default_region` / `auth_dir`
        / `self_chat_prefix`."""
        changes: dict[str, object] = {}
        if self_chat is not UNSET:
            changes["self_chat"] = int(validate.boolean("self_chat", self_chat))
        if self_chat_prefix is not UNSET:
            changes["self_chat_prefix"] = validate.reply_prefix(self_chat_prefix)
        if answers_paused is not UNSET:
            changes["answers_paused"] = int(validate.boolean("answers_paused", answers_paused))
        if approvals is not UNSET:
            changes["approvals"] = int(validate.boolean("approvals", approvals))
        if approval_hours is not UNSET:
            changes["approval_hours"] = validate.approval_hours(approval_hours)
        if group_mode is not UNSET:
            changes["group_mode"] = validate.group_mode(group_mode)
        if groups_allowed is not UNSET:
            changes["groups_allowed"] = "\n".join(validate.group_jids(groups_allowed))
        if answer_groups is not UNSET:
            changes["answer_groups"] = int(validate.boolean("answer_groups", answer_groups))
        if open_to_everyone is not UNSET:
            changes["open_to_everyone"] = int(validate.boolean("open_to_everyone", open_to_everyone))
        if default_region is not UNSET:
            changes["default_region"] = validate.region(default_region)
        if auth_dir is not UNSET:
            changes["auth_dir"] = validate.auth_dir(auth_dir)
        return self._set(workspace_id, changes)

    @readonly
    def contacts(self, workspace_id: int) -> tuple[TrustedContact, ...]:
        """The trusted contacts in the order they were added."""
        with self._db.read() as db:
            require_workspace(db, workspace_id)
            return _contacts(db, workspace_id)

    @offloadable
    def add_contact(
        self,
        workspace_id: int,
        phone: str,
        permission: Permission | str = Permission.WRITE,
        name: str | None = None,
    ) -> TrustedContact:
        """Trust a number as typed; it is normalised with the workspace's default region."""
        perm = validate.permission(permission)
        with self._db.write() as db:
            require_workspace(db, workspace_id)
            number = validate.phone(phone, _region(db, workspace_id))
            number_written = phone.strip()
            contact = TrustedContact(number, perm, validate.contact_name(name), number_written)
            try:
                db.execute(
                    "INSERT INTO whatsapp_trusted_contacts "
                    "(workspace_id, phone, name, permission, created_at, written) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        workspace_id,
                        contact.phone,
                        contact.name,
                        contact.permission.value,
                        self._db.now(),
                        number_written,
                    ),
                )
            except sqlite3.IntegrityError:
                raise Duplicate(
                    f"{number} is already a trusted contact in this workspace: change its permission or name instead."
                ) from None
            return contact

    @offloadable
    def update_contact(
        self,
        workspace_id: int,
        phone: str,
        *,
        permission: Permission | str | Unset = UNSET,
        name: str | Unset | None = UNSET,
    ) -> TrustedContact:
        """Change a contact's permission and/or name (None removes the name)."""
        with self._db.write() as db:
            require_workspace(db, workspace_id)
            number = validate.phone(phone, _region(db, workspace_id))
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
                current.written,
                current.whatsapp,
            )
            db.execute(
                "UPDATE whatsapp_trusted_contacts SET permission = ?, name = ? WHERE id = ?",
                (contact.permission.value, contact.name, row["id"]),
            )
            return contact

    @offloadable
    def record_registration(self, workspace_id: int, phone: str, registration: Registration) -> TrustedContact | None:
        """Keep what WhatsApp answered about a contact's number (`phone` in E.164); None when the
        contact was removed meanwhile."""
        with self._db.write() as db:
            require_workspace(db, workspace_id)
            checked_at = registration.checked_at
            db.execute(
                "UPDATE whatsapp_trusted_contacts SET wa_state = ?, wa_address = ?, wa_lid = ?, wa_checked_at = ? "
                "WHERE workspace_id = ? AND phone = ?",
                (
                    WhatsAppState(registration.state).value,
                    registration.address,
                    registration.lid,
                    encode_time(checked_at) if checked_at is not None else None,
                    workspace_id,
                    phone,
                ),
            )
            row = db.execute(
                "SELECT * FROM whatsapp_trusted_contacts WHERE workspace_id = ? AND phone = ?", (workspace_id, phone)
            ).fetchone()
            return decode.contact(row) if row is not None else None

    @offloadable
    def remove_contact(self, workspace_id: int, phone: str) -> bool:
        """Stop trusting a number; False when it was not a trusted contact."""
        with self._db.write() as db:
            require_workspace(db, workspace_id)
            number = validate.phone(phone, _region(db, workspace_id))
            cursor = db.execute(
                "DELETE FROM whatsapp_trusted_contacts WHERE workspace_id = ? AND phone = ?", (workspace_id, number)
            )
            return cursor.rowcount > 0

    @offloadable
    def set_allowed_users(self, workspace_id: int, entries: Iterable[str | int]) -> tuple[str, ...]:
        """Replace the legacy allowedUsers list.

        Entries are kept as typed (trimmed; blank ones dropped) and in order, including ones that
        are not usable phone numbers: the access policy reports those as problems instead.
        """
        clean = tuple(text for text in (str(entry).strip() for entry in entries) if text)
        with self._db.write() as db:
            require_workspace(db, workspace_id)
            db.execute("DELETE FROM whatsapp_allowed_users WHERE workspace_id = ?", (workspace_id,))
            db.executemany(
                "INSERT INTO whatsapp_allowed_users (workspace_id, position, entry) VALUES (?, ?, ?)",
                [(workspace_id, position, entry) for position, entry in enumerate(clean)],
            )
            return clean

    def _set(self, workspace_id: int, changes: dict[str, object]) -> WhatsAppSettings:
        with self._db.write() as db:
            require_workspace(db, workspace_id)
            now = self._db.now()
            db.execute(
                "INSERT OR IGNORE INTO whatsapp_settings (workspace_id, updated_at) VALUES (?, ?)", (workspace_id, now)
            )
            if changes:
                columns = ", ".join(f"{name} = ?" for name in changes)  # names are ours, not the caller's
                db.execute(
                    f"UPDATE whatsapp_settings SET {columns}, updated_at = ? WHERE workspace_id = ?",
                    (*changes.values(), now, workspace_id),
                )
            return read_settings(db, workspace_id)


def read_settings(db: sqlite3.Connection, workspace_id: int) -> WhatsAppSettings:
    require_workspace(db, workspace_id)
    row = db.execute("SELECT * FROM whatsapp_settings WHERE workspace_id = ?", (workspace_id,)).fetchone()
    contacts = _contacts(db, workspace_id)
    allowed = allowed_users_of(db, workspace_id)
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
        self_chat=bool(row["self_chat"]),
        self_chat_prefix=row["self_chat_prefix"],
        answers_paused=bool(row["answers_paused"]),
        group_mode=row["group_mode"],
        groups_allowed=tuple(line for line in row["groups_allowed"].splitlines() if line),
        approvals=bool(row["approvals"]),
        approval_hours=float(row["approval_hours"]),
    )


def allowed_users_of(db: sqlite3.Connection, workspace_id: int) -> tuple[str, ...]:
    """The legacy allowedUsers list, entries exactly as stored, in order."""
    rows = db.execute(
        "SELECT entry FROM whatsapp_allowed_users WHERE workspace_id = ? ORDER BY position", (workspace_id,)
    )
    return tuple(row[0] for row in rows)


def _region(db: sqlite3.Connection, workspace_id: int) -> str | None:
    row = db.execute("SELECT default_region FROM whatsapp_settings WHERE workspace_id = ?", (workspace_id,)).fetchone()
    return row[0] if row is not None else None


def _contacts(db: sqlite3.Connection, workspace_id: int) -> tuple[TrustedContact, ...]:
    rows = db.execute("SELECT * FROM whatsapp_trusted_contacts WHERE workspace_id = ? ORDER BY id", (workspace_id,))
    return tuple(decode.contact(row) for row in rows)
