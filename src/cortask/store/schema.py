"""The numbered schema migrations. Append new ones; never edit one that has shipped.

Each migration runs in its own transaction together with the row that records it in
`schema_version`, so a database is always exactly at one version. SQLite cannot change
`foreign_keys` inside a transaction: a future migration that rebuilds a referenced table must
keep its foreign keys valid by itself (create, copy, drop, rename in that order).

Times are stored as ISO 8601 text in UTC with microseconds (they sort as text). Booleans are
0/1 with CHECK constraints. Order of arrival is an AUTOINCREMENT integer, never a timestamp.
"""

from __future__ import annotations

from cortask.migrations import Migration

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration"]


_V1 = Migration(
    1,
    "workspaces, WhatsApp channel settings, agent settings, chats, sessions, inbound journal, outbox",
    (
        """
        CREATE TABLE workspaces (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE CHECK (length(trim(name)) > 0),
            created_at TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE whatsapp_settings (
            workspace_id INTEGER PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
            enabled INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
            answer_groups INTEGER NOT NULL DEFAULT 0 CHECK (answer_groups IN (0, 1)),
            open_to_everyone INTEGER NOT NULL DEFAULT 0 CHECK (open_to_everyone IN (0, 1)),
            default_region TEXT,
            auth_dir TEXT,
            updated_at TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE whatsapp_trusted_contacts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            workspace_id INTEGER NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
            phone TEXT NOT NULL CHECK (phone GLOB '+[1-9]*'),
            name TEXT,
            permission TEXT NOT NULL CHECK (permission IN ('read', 'write', 'admin')),
            created_at TEXT NOT NULL,
            UNIQUE (workspace_id, phone)
        )
        """,
        """
        CREATE TABLE whatsapp_allowed_users (
            workspace_id INTEGER NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            entry TEXT NOT NULL,
            PRIMARY KEY (workspace_id, position)
        )
        """,
        """
        CREATE TABLE agent_settings (
            workspace_id INTEGER PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
            provider TEXT NOT NULL CHECK (length(provider) > 0),
            settings TEXT NOT NULL CHECK (json_valid(settings) AND json_type(settings) = 'object'),
            updated_at TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE chat_workspaces (
            chat_jid TEXT PRIMARY KEY,
            workspace_id INTEGER NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
            created_at TEXT NOT NULL
        )
        """,
        "CREATE INDEX chat_workspaces_by_workspace ON chat_workspaces (workspace_id)",
        """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            text TEXT NOT NULL,
            at TEXT NOT NULL,
            message_id TEXT
        )
        """,
        "CREATE INDEX messages_by_session ON messages (session_id, seq)",
        # A WhatsApp message is one turn, however often it is replayed.
        "CREATE UNIQUE INDEX messages_once ON messages (session_id, message_id) WHERE message_id IS NOT NULL",
        """
        CREATE TABLE inbound_journal (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            account TEXT NOT NULL,
            chat_jid TEXT NOT NULL,
            message_id TEXT NOT NULL,
            sender TEXT NOT NULL,
            text TEXT NOT NULL,
            received_at TEXT NOT NULL,
            message_ts TEXT,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'answered', 'failed', 'skipped')),
            attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            reply_message_id TEXT,
            reply_text TEXT,
            error TEXT,
            reason TEXT,
            updated_at TEXT NOT NULL,
            UNIQUE (account, chat_jid, message_id)
        )
        """,
        "CREATE INDEX inbound_journal_by_state ON inbound_journal (state, seq)",
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            chat_jid TEXT NOT NULL,
            text TEXT NOT NULL,
            in_reply_to TEXT,
            account TEXT,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent')),
            attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            last_error TEXT,
            created_at TEXT NOT NULL,
            sent_message_id TEXT,
            sent_at TEXT,
            CHECK ((state = 'sent') = (sent_at IS NOT NULL))
        )
        """,
        "CREATE INDEX outbox_by_state ON outbox (state, id)",
        # One queued reply per inbound message: enqueueing it again returns the same item.
        "CREATE UNIQUE INDEX outbox_one_reply ON outbox (chat_jid, in_reply_to) WHERE in_reply_to IS NOT NULL",
    ),
)

_V2 = Migration(
    2,
    "outbox: the WhatsApp message id reserved for each reply",
    (
        # Chosen before the first send and reused by every later attempt, so a reply resent after a
        # crash carries the same id and the recipient's phone shows it once.
        "ALTER TABLE outbox ADD COLUMN message_id TEXT",
        "CREATE UNIQUE INDEX outbox_by_message_id ON outbox (message_id) WHERE message_id IS NOT NULL",
    ),
)

_V3 = Migration(
    3,
    "whatsapp_settings: paused, so a pause outlives the process that made it",
    (
        # `cortask whatsapp pause` with no service running, or a restart after pausing in the UI:
        # the next `cortask serve` keeps the link but does not connect until started again.
        "ALTER TABLE whatsapp_settings ADD COLUMN paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1))",
    ),
)

_V4 = Migration(
    4,
    "whatsapp_trusted_contacts: the number as written, and the WhatsApp account it was found registered as",
    (
        # Shown as the person typed it ("+52 1 55 1234 5678"), matched by its E.164 form.
        "ALTER TABLE whatsapp_trusted_contacts ADD COLUMN written TEXT",
        # What WhatsApp answered when asked which account the number is (usync), and when: the PN
        # address's user part ("5215512345678") and LID, or that it is not on WhatsApp.
        "ALTER TABLE whatsapp_trusted_contacts ADD COLUMN wa_state TEXT NOT NULL DEFAULT 'unchecked' "
        "CHECK (wa_state IN ('unchecked', 'registered', 'not_on_whatsapp'))",
        "ALTER TABLE whatsapp_trusted_contacts ADD COLUMN wa_address TEXT",
        "ALTER TABLE whatsapp_trusted_contacts ADD COLUMN wa_lid TEXT",
        "ALTER TABLE whatsapp_trusted_contacts ADD COLUMN wa_checked_at TEXT",
    ),
)

_V5 = Migration(
    5,
    "activity: what the channel did, kept across restarts (the newest 500 per workspace)",
    (
        """
        CREATE TABLE activity (
            id INTEGER PRIMARY KEY,
            workspace_id INTEGER NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            data TEXT NOT NULL
        )
        """,
        "CREATE INDEX activity_by_workspace ON activity (workspace_id, id)",
    ),
)


_V6 = Migration(
    6,
    "the owner in control (issue #14): self-chat, answers paused, mention-gated groups, approving strangers",
    (
        # The owner talks to the agent in their own chat ("Message yourself"); off by default.
        "ALTER TABLE whatsapp_settings ADD COLUMN self_chat INTEGER NOT NULL DEFAULT 0 CHECK (self_chat IN (0, 1))",
        # What marks the agent's replies in the owner's own chat, if anything.
        "ALTER TABLE whatsapp_settings ADD COLUMN self_chat_prefix TEXT",
        # `/pause` from WhatsApp: connected (so `/resume` can arrive) but nobody gets an agent answer.
        "ALTER TABLE whatsapp_settings ADD COLUMN answers_paused INTEGER NOT NULL DEFAULT 0 "
        "CHECK (answers_paused IN (0, 1))",
        # With groups on: answer only when @-mentioned or replied to (mention), or always.
        "ALTER TABLE whatsapp_settings ADD COLUMN group_mode TEXT NOT NULL DEFAULT 'mention' "
        "CHECK (group_mode IN ('mention', 'always'))",
        # The groups answered in (JIDs, one a line); empty: every group.
        "ALTER TABLE whatsapp_settings ADD COLUMN groups_allowed TEXT NOT NULL DEFAULT ''",
        # A stranger's first message is held for the owner's approval (off: strangers are ignored).
        "ALTER TABLE whatsapp_settings ADD COLUMN approvals INTEGER NOT NULL DEFAULT 0 CHECK (approvals IN (0, 1))",
        "ALTER TABLE whatsapp_settings ADD COLUMN approval_hours REAL NOT NULL DEFAULT 24 CHECK (approval_hours > 0)",
        # One row per stranger's held message; a rejected number stays here, muted.
        """
        CREATE TABLE whatsapp_approvals (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            workspace_id INTEGER NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
            code TEXT NOT NULL,
            phone TEXT NOT NULL,
            chat_jid TEXT NOT NULL,
            message_id TEXT NOT NULL,
            sender_jid TEXT NOT NULL,
            push_name TEXT,
            text TEXT NOT NULL,
            message_ts INTEGER,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'approved', 'rejected')),
            UNIQUE (workspace_id, code)
        )
        """,
        "CREATE INDEX whatsapp_approvals_by_phone ON whatsapp_approvals (workspace_id, phone, state)",
    ),
)


_OUTBOX_COLUMNS = (
    "id, chat_jid, text, in_reply_to, account, state, attempts, last_error, created_at, sent_message_id, sent_at, "
    "message_id"
)
_V7 = Migration(
    7,
    "outbox: replies in parts (one row and one reserved id per part), and a failed state",
    (
        # A reply longer than WhatsApp takes goes out in parts, each under its own id so a crash
        # between parts resends only the missing ones; a send that keeps failing ends `failed`.
        # The CHECK on state changes, so the table is rebuilt (nothing references it).
        """
        CREATE TABLE outbox_v7 (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            chat_jid TEXT NOT NULL,
            text TEXT NOT NULL,
            in_reply_to TEXT,
            account TEXT,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            last_error TEXT,
            created_at TEXT NOT NULL,
            sent_message_id TEXT,
            sent_at TEXT,
            message_id TEXT,
            part INTEGER NOT NULL DEFAULT 0 CHECK (part >= 0),
            parts INTEGER NOT NULL DEFAULT 1 CHECK (parts >= 1 AND part < parts),
            CHECK ((state = 'sent') = (sent_at IS NOT NULL))
        )
        """,
        f"INSERT INTO outbox_v7 ({_OUTBOX_COLUMNS}) SELECT {_OUTBOX_COLUMNS} FROM outbox",
        "DROP TABLE outbox",
        "ALTER TABLE outbox_v7 RENAME TO outbox",
        "CREATE INDEX outbox_by_state ON outbox (state, id)",
        # One reply per inbound message, now one row per part of it.
        "CREATE UNIQUE INDEX outbox_one_reply ON outbox (chat_jid, in_reply_to, part) WHERE in_reply_to IS NOT NULL",
        "CREATE UNIQUE INDEX outbox_by_message_id ON outbox (message_id) WHERE message_id IS NOT NULL",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7)
SCHEMA_VERSION = MIGRATIONS[-1].version

assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1)), "migrations must be numbered 1, 2, 3…"
