"""Rows to models: one function per table, the only place that knows the column names' meaning."""

from __future__ import annotations

import json
import sqlite3
from types import MappingProxyType

from cortask.contacts.access import Permission, Registration, TrustedContact, WhatsAppState
from cortask.store.db import decode_time
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
    Workspace,
)

__all__ = [
    "agent_settings",
    "chat_mapping",
    "contact",
    "journal_entry",
    "message",
    "outbox_item",
    "session",
    "workspace",
]


def workspace(row: sqlite3.Row) -> Workspace:
    return Workspace(row["id"], row["name"], decode_time(row["created_at"]))


def contact(row: sqlite3.Row) -> TrustedContact:
    checked_at = row["wa_checked_at"]
    registration = Registration(
        WhatsAppState(row["wa_state"]),
        row["wa_address"],
        row["wa_lid"],
        decode_time(checked_at) if checked_at is not None else None,
    )
    return TrustedContact(row["phone"], Permission(row["permission"]), row["name"], row["written"], registration)


def agent_settings(row: sqlite3.Row) -> AgentSettings:
    settings: dict[str, JSONValue] = json.loads(row["settings"])
    return AgentSettings(
        row["workspace_id"], row["provider"], MappingProxyType(settings), decode_time(row["updated_at"])
    )


def chat_mapping(row: sqlite3.Row) -> ChatMapping:
    return ChatMapping(row["chat_jid"], row["workspace_id"], decode_time(row["created_at"]))


def session(row: sqlite3.Row) -> Session:
    return Session(row["id"], decode_time(row["created_at"]), decode_time(row["updated_at"]))


def message(row: sqlite3.Row) -> HistoryMessage:
    return HistoryMessage(
        seq=row["seq"],
        session_id=row["session_id"],
        role=Role(row["role"]),
        text=row["text"],
        at=decode_time(row["at"]),
        message_id=row["message_id"],
    )


def journal_entry(row: sqlite3.Row) -> JournalEntry:
    return JournalEntry(
        seq=row["seq"],
        account=row["account"],
        chat_jid=row["chat_jid"],
        message_id=row["message_id"],
        sender=row["sender"],
        text=row["text"],
        received_at=decode_time(row["received_at"]),
        message_timestamp=decode_time(row["message_ts"]) if row["message_ts"] is not None else None,
        state=JournalState(row["state"]),
        attempts=row["attempts"],
        reply_message_id=row["reply_message_id"],
        reply_text=row["reply_text"],
        error=row["error"],
        reason=row["reason"],
        updated_at=decode_time(row["updated_at"]),
    )


def outbox_item(row: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        chat_jid=row["chat_jid"],
        text=row["text"],
        in_reply_to=row["in_reply_to"],
        account=row["account"],
        state=OutboxState(row["state"]),
        attempts=row["attempts"],
        last_error=row["last_error"],
        created_at=decode_time(row["created_at"]),
        sent_message_id=row["sent_message_id"],
        sent_at=decode_time(row["sent_at"]) if row["sent_at"] is not None else None,
        message_id=row["message_id"],
        part=row["part"],
        parts=row["parts"],
    )
