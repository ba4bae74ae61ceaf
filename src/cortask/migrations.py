"""Numbered, forward-only schema migrations for our SQLite files.

Both databases use it: the store's `cortask.db` (`cortask.store.schema`) and the WhatsApp link's
`auth.db` (`channels/whatsapp/authstore.py`). It sits below both, so neither imports the other.

Each migration runs in its own transaction together with the row that records it in
`schema_version`, so a database is always exactly at one version. Append new migrations; never
edit one that has shipped.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["Migration", "NotOurDatabase", "SchemaTooNew", "UnusableDatabase", "migrate", "schema_version"]

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


class UnusableDatabase(Exception):
    """The file cannot be brought under our schema; it was left as it was."""


class SchemaTooNew(UnusableDatabase):
    """A newer Cortask wrote this database; this one must not touch it."""

    def __init__(self, message: str, *, found: int, supported: int) -> None:
        super().__init__(message)
        self.found = found
        self.supported = supported


class NotOurDatabase(UnusableDatabase):
    """A SQLite database holding somebody else's tables."""


def schema_version(conn: sqlite3.Connection) -> int:
    """The version the database is at; 0 for a database without our tables."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if exists is None:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def migrate(
    conn: sqlite3.Connection,
    path: Path | str,
    migrations: Sequence[Migration],
    *,
    adopt: Collection[str] = (),
) -> int:
    """Apply the migrations the database has not seen yet and return its version.

    Idempotent, and safe if two processes open a new database at once: each migration re-reads
    the version under the write lock before it runs. Refuses (SchemaTooNew) a database that a
    newer Cortask has written, and (NotOurDatabase) a SQLite database that holds somebody else's
    tables, without changing either.

    `adopt` names the tables of a database written before it had a `schema_version`: one that
    holds only those is ours, at version 0, and migration 1 (which must then create them with
    IF NOT EXISTS) brings it under this framework without touching its rows.
    """
    supported = migrations[-1].version if migrations else 0
    current = schema_version(conn)
    if current > supported:
        raise SchemaTooNew(
            f"{path} was written by a newer version of Cortask (database schema {current}; this version "
            f"understands up to {supported}). Upgrade Cortask to open it.",
            found=current,
            supported=supported,
        )
    if current == 0 and _has_foreign_tables(conn, frozenset(adopt)):
        raise NotOurDatabase(f"{path} is a SQLite database, but not Cortask's.")
    for migration in migrations:
        if migration.version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_VERSION_TABLE)
            if schema_version(conn) < migration.version:  # another process may have been first
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.description, datetime.now(UTC).isoformat(timespec="microseconds")),
                )
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        current = migration.version
    return current


def _has_foreign_tables(conn: sqlite3.Connection, adopted: frozenset[str]) -> bool:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    return any(name not in adopted for (name,) in rows)
