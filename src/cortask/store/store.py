"""`Store`: the database and one repository per aggregate, synchronous.

    store = Store.open()                      # $CORTASK_HOME/cortask.db, migrated
    ws = store.workspaces.ensure_default().id
    store.whatsapp.add_contact(ws, "+49 151 23456789", "write", "Ada")
    with store.transaction():                 # several calls, one atomic write
        store.journal.mark_skipped(account, chat, message_id, "too old")
        store.outbox.enqueue(chat, "…", in_reply_to=message_id)

From asyncio use `AsyncStore` (cortask.store.aio): the same repositories, awaited.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from cortask.store.activity import ActivityRepository
from cortask.store.agents import AgentRepository
from cortask.store.approvals import ApprovalRepository
from cortask.store.base import Sync
from cortask.store.db import Clock, Database, connect, default_database_path, utcnow
from cortask.store.journal import JournalRepository
from cortask.store.outbox import OutboxRepository
from cortask.store.sessions import SessionRepository
from cortask.store.whatsapp import WhatsAppRepository
from cortask.store.workspaces import WorkspaceRepository

__all__ = ["Store"]


class Store(Database):
    """Cortask's state: workspaces, channel and agent settings, sessions, journal, outbox.

    Every repository method is one transaction of its own; `transaction()` (from `Database`)
    makes several of them one.
    """

    def __init__(self, conn: sqlite3.Connection, *, path: Path, clock: Clock = utcnow) -> None:
        super().__init__(conn, path=path, clock=clock)
        self.workspaces = WorkspaceRepository[Sync](self)
        self.whatsapp = WhatsAppRepository[Sync](self)
        self.agents = AgentRepository[Sync](self)
        self.sessions = SessionRepository[Sync](self)
        self.journal = JournalRepository[Sync](self)
        self.outbox = OutboxRepository[Sync](self)
        self.activity = ActivityRepository[Sync](self)
        self.approvals = ApprovalRepository[Sync](self)

    @classmethod
    def open(
        cls,
        path: Path | str | None = None,
        *,
        environ: Mapping[str, str] = os.environ,
        clock: Clock = utcnow,
    ) -> Store:
        """Open the database (default ``$CORTASK_HOME/cortask.db``), migrate it, make sure a workspace exists."""
        db_path = Path(path).expanduser() if path is not None else default_database_path(environ)
        store = cls(connect(db_path), path=db_path, clock=clock)
        try:
            store.workspaces.ensure_default()
        except BaseException:
            store.close()
            raise
        return store

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
