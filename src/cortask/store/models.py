"""What the store hands out: frozen value objects, rebuilt from rows on every read.

Times are timezone-aware UTC `datetime`s. Ids that come from WhatsApp (chat JIDs, message ids)
are plain strings, kept exactly as given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from pathlib import Path
from typing import Final, TypeAlias

from cortask.contacts.access import AccessPolicy, TrustedContact

__all__ = [
    "UNSET",
    "WHATSAPP_SESSION_PREFIX",
    "AgentSettings",
    "ChatMapping",
    "HistoryMessage",
    "JSONValue",
    "JournalEntry",
    "JournalState",
    "OutboxItem",
    "OutboxState",
    "Role",
    "Session",
    "Unset",
    "WhatsAppSettings",
    "Workspace",
    "session_id_for_chat",
]

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"

WHATSAPP_SESSION_PREFIX = "whatsapp:"


class Unset(Enum):
    """Marks an argument that was not passed, as distinct from None ("clear this setting")."""

    UNSET = "UNSET"


UNSET: Final = Unset.UNSET


def session_id_for_chat(chat_jid: str) -> str:
    """The session of a WhatsApp chat: ``whatsapp:<chat jid>``."""
    return WHATSAPP_SESSION_PREFIX + chat_jid


@dataclass(frozen=True, slots=True)
class Workspace:
    id: int
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WhatsAppSettings:
    """The WhatsApp channel of one workspace. A workspace that never added the channel gets defaults."""

    workspace_id: int
    enabled: bool = False
    paused: bool = False  # linked but kept disconnected until started again
    trusted_contacts: tuple[TrustedContact, ...] = ()
    allowed_users: tuple[str, ...] = ()  # the legacy list, raw entries as typed, in order
    answer_groups: bool = False
    open_to_everyone: bool = False
    default_region: str | None = None
    auth_dir: Path | None = None  # None: the default, $CORTASK_HOME/whatsapp-auth
    self_chat: bool = False  # the owner talks to the agent in their own chat
    self_chat_prefix: str | None = None  # marks the agent's replies in the owner's own chat
    answers_paused: bool = False  # `/pause`: connected, but the agent answers nobody
    group_mode: str = "mention"  # with groups on: "mention" (mentioned or replied to) or "always"
    groups_allowed: tuple[str, ...] = ()  # group JIDs answered in; empty: every group
    approvals: bool = False  # a stranger's first message waits for the owner's /approve
    approval_hours: float = 24.0  # how long a code stays valid

    def access_policy(self) -> AccessPolicy:
        return AccessPolicy(
            self.trusted_contacts,
            self.allowed_users,
            open_to_everyone=self.open_to_everyone,
            default_region=self.default_region,
        )


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """Which agent answers in a workspace, and its settings (which may hold API keys)."""

    workspace_id: int
    provider: str
    settings: Mapping[str, JSONValue]
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ChatMapping:
    chat_jid: str
    workspace_id: int
    created_at: datetime


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    created_at: datetime
    updated_at: datetime  # when the last message was added (or the session created)


@dataclass(frozen=True, slots=True)
class HistoryMessage:
    """One turn of a conversation."""

    seq: int  # store-wide order of insertion
    session_id: str
    role: Role
    text: str
    at: datetime
    message_id: str | None = None


class JournalState(StrEnum):
    PENDING = "pending"  # recorded, not finished: replayed after a restart
    ANSWERED = "answered"  # final
    FAILED = "failed"  # gave up: not replayed after a restart
    SKIPPED = "skipped"  # final: deliberately not answered (reason says why)

    @property
    def is_final(self) -> bool:
        return self in (JournalState.ANSWERED, JournalState.SKIPPED)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One inbound message that passed the filter and access control, and what became of it."""

    seq: int  # arrival order
    account: str  # our own JID, device suffix removed
    chat_jid: str
    message_id: str
    sender: str
    text: str
    received_at: datetime
    message_timestamp: datetime | None
    state: JournalState
    attempts: int
    reply_message_id: str | None
    reply_text: str | None
    error: str | None  # why the last attempt failed
    reason: str | None  # why it was skipped
    updated_at: datetime

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.account, self.chat_jid, self.message_id)


class OutboxState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # sending kept failing: given up, never sent again


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A reply waiting to be sent (the connection was down when it was ready)."""

    id: int
    chat_jid: str
    text: str
    in_reply_to: str | None  # the inbound message id this answers
    account: str | None  # our own JID, when the reply belongs to a journal entry
    state: OutboxState
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_message_id: str | None
    sent_at: datetime | None
    message_id: str | None = None  # reserved before the first send; every attempt reuses it
    part: int = 0  # which part of a long reply (0-based), of `parts`
    parts: int = 1


@dataclass(frozen=True, slots=True)
class Approval:
    """A stranger's message held for the owner's approval (issue #14)."""

    code: str
    phone: str  # E.164
    chat_jid: str
    message_id: str
    sender_jid: str
    push_name: str | None
    text: str
    message_ts: int | None
    created_at: float
    expires_at: float
    state: str  # pending | approved | rejected
