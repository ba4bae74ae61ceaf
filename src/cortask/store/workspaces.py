"""Workspaces: every setting hangs off one. The first is created on first run."""

from __future__ import annotations

import sqlite3

from cortask.store import decode
from cortask.store.base import M, Repository, offloadable
from cortask.store.errors import NotFound
from cortask.store.models import Workspace

__all__ = ["DEFAULT_WORKSPACE_NAME", "WorkspaceRepository", "first_workspace", "require_workspace"]

DEFAULT_WORKSPACE_NAME = "Personal"


class WorkspaceRepository(Repository[M]):
    @offloadable
    def ensure_default(self) -> Workspace:
        """The first workspace, creating "Personal" when there is none (so on first run only)."""
        with self._db.write() as db:
            if db.execute("SELECT 1 FROM workspaces LIMIT 1").fetchone() is None:
                db.execute(
                    "INSERT INTO workspaces (name, created_at) VALUES (?, ?)", (DEFAULT_WORKSPACE_NAME, self._db.now())
                )
            return first_workspace(db)


def first_workspace(db: sqlite3.Connection) -> Workspace:
    """The first workspace: where chats that are not mapped anywhere go."""
    row = db.execute("SELECT * FROM workspaces ORDER BY id LIMIT 1").fetchone()
    if row is None:  # only between opening a new file and ensure_default()
        raise NotFound("There is no workspace yet: create one first.")
    return decode.workspace(row)


def require_workspace(db: sqlite3.Connection, workspace_id: int) -> Workspace:
    """The workspace, or NotFound: every method that takes a ``workspace_id`` checks it first."""
    row = db.execute("SELECT * FROM workspaces WHERE id = ?", (workspace_id,)).fetchone()
    if row is None:
        raise NotFound(f"There is no workspace with id {workspace_id!r}: choose one from the list of workspaces.")
    return decode.workspace(row)
