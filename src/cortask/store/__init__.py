"""Cortask's own state in one SQLite file: ``$CORTASK_HOME/cortask.db``.

Workspaces, the WhatsApp channel's settings and trusted contacts, agent settings, which chat goes
to which workspace, sessions and their history, the inbound journal (every accepted message is
recorded before it is processed, so nothing is lost or answered twice) and the outbox of replies
waiting for the connection.

`Store` owns the connection and its transactions; one repository per aggregate hangs off it:
``store.workspaces``, ``store.whatsapp`` (channel settings, trusted contacts, allowedUsers),
``store.agents``, ``store.sessions`` (and their history), ``store.journal`` and ``store.outbox``.
`AsyncStore` offers the same repositories for asyncio, awaited, run on one worker thread.
"""

from cortask.store.aio import AsyncStore
from cortask.store.db import DB_FILE, default_database_path
from cortask.store.errors import (
    DatabaseFailed,
    DatabaseUnusable,
    Duplicate,
    InvalidInput,
    InvalidPhone,
    JournalStateError,
    NotFound,
    SchemaTooNew,
    StoreBusy,
    StoreClosed,
    StoreError,
)
from cortask.store.masking import MASK, is_secret_key, mask_secrets
from cortask.store.models import (
    UNSET,
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
    Unset,
    WhatsAppSettings,
    Workspace,
    session_id_for_chat,
)
from cortask.store.schema import SCHEMA_VERSION
from cortask.store.store import Store
from cortask.store.validate import normalize_account
from cortask.store.workspaces import DEFAULT_WORKSPACE_NAME

__all__ = [
    "DB_FILE",
    "DEFAULT_WORKSPACE_NAME",
    "MASK",
    "SCHEMA_VERSION",
    "UNSET",
    "AgentSettings",
    "AsyncStore",
    "ChatMapping",
    "DatabaseFailed",
    "DatabaseUnusable",
    "Duplicate",
    "HistoryMessage",
    "InvalidInput",
    "InvalidPhone",
    "JSONValue",
    "JournalEntry",
    "JournalState",
    "JournalStateError",
    "NotFound",
    "OutboxItem",
    "OutboxState",
    "Role",
    "SchemaTooNew",
    "Session",
    "Store",
    "StoreBusy",
    "StoreClosed",
    "StoreError",
    "Unset",
    "WhatsAppSettings",
    "Workspace",
    "default_database_path",
    "is_secret_key",
    "mask_secrets",
    "normalize_account",
    "session_id_for_chat",
]
