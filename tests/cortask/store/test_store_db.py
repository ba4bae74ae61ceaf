"""The database file: location, permissions, pragmas, migrations and refusing what it must not touch."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_support import create_workspace, list_workspaces

from cortask.migrations import Migration, schema_version
from cortask.store import (
    DB_FILE,
    SCHEMA_VERSION,
    DatabaseUnusable,
    SchemaTooNew,
    Store,
    StoreBusy,
    StoreClosed,
    default_database_path,
)
from cortask.store import db as store_db
from cortask.store.db import connect, migrate
from cortask.store.schema import MIGRATIONS

NEXT = SCHEMA_VERSION + 1
V2 = Migration(NEXT, "test: notes", ("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """Make the explicit chmods visible: with umask 0, mkdir/open would otherwise give 0777/0666."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# --- where it lives -------------------------------------------------------------------------


def test_default_path_follows_cortask_home(tmp_path: Path) -> None:
    assert default_database_path({"CORTASK_HOME": str(tmp_path / "h")}) == tmp_path / "h" / DB_FILE
    assert default_database_path({}) == Path.home() / ".cortask" / "cortask.db"


def test_open_without_path_uses_cortask_home(tmp_path: Path) -> None:
    with Store.open(environ={"CORTASK_HOME": str(tmp_path / "home")}) as store:
        assert store.path == tmp_path / "home" / "cortask.db"
    assert (tmp_path / "home" / "cortask.db").is_file()


# --- permissions ----------------------------------------------------------------------------


def test_new_home_is_0700_and_database_files_0600(tmp_path: Path, umask_zero: None) -> None:
    home = tmp_path / "new" / "home"
    with Store.open(home / "cortask.db") as store:
        create_workspace(store, "Work")  # makes sure the -wal file exists
        assert mode(home) == 0o700
        assert mode(home / "cortask.db") == 0o600
        for suffix in ("-wal", "-shm"):
            assert mode(home / f"cortask.db{suffix}") == 0o600, suffix


def test_existing_home_and_files_with_loose_modes_are_made_private(tmp_path: Path) -> None:
    # issue #12: what already existed with a looser mode is tightened when opened
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    with Store.open(home / "cortask.db"):
        pass
    os.chmod(home, 0o755)
    for name in ("cortask.db", "cortask.db-wal", "cortask.db-shm"):
        (home / name).touch()
        os.chmod(home / name, 0o644)
    with Store.open(home / "cortask.db"):
        assert mode(home) == 0o700
        for name in ("cortask.db", "cortask.db-wal", "cortask.db-shm"):
            assert mode(home / name) == 0o600


# --- pragmas --------------------------------------------------------------------------------


def test_connection_pragmas(db_path: Path) -> None:
    conn = connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == store_db.BUSY_TIMEOUT_MS
        assert conn.isolation_level is None
    finally:
        conn.close()


def test_foreign_keys_are_enforced(store: Store, db_path: Path) -> None:
    conn = connect(db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO chat_workspaces VALUES ('c@g.us', 999, '2025-01-01T00:00:00+00:00')")
    finally:
        conn.close()


# --- migrations -----------------------------------------------------------------------------


def test_migrates_an_empty_database_to_the_current_version(db_path: Path) -> None:
    with Store.open(db_path) as store:
        assert [w.name for w in list_workspaces(store)] == ["Personal"]
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute("SELECT version, description FROM schema_version ORDER BY version").fetchall()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
    assert all(r[1] for r in rows)
    assert {
        "schema_version",
        "workspaces",
        "whatsapp_settings",
        "whatsapp_trusted_contacts",
        "whatsapp_allowed_users",
        "agent_settings",
        "chat_workspaces",
        "sessions",
        "messages",
        "inbound_journal",
        "outbox",
    } <= tables


def test_reopening_applies_nothing_twice_and_keeps_data(db_path: Path) -> None:
    with Store.open(db_path) as store:
        create_workspace(store, "Work")
    for _ in range(3):
        with Store.open(db_path) as store:
            assert [w.name for w in list_workspaces(store)] == ["Personal", "Work"]
    conn = connect(db_path)
    try:
        assert migrate(conn, db_path) == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


def test_a_new_migration_upgrades_an_existing_database(db_path: Path) -> None:
    with Store.open(db_path) as store:
        create_workspace(store, "Work")
    conn = connect(db_path, (*MIGRATIONS, V2))
    try:
        assert schema_version(conn) == NEXT
        conn.execute("INSERT INTO notes (body) VALUES ('kept')")
        assert migrate(conn, db_path, (*MIGRATIONS, V2)) == NEXT  # idempotent
        assert [r[0] for r in conn.execute("SELECT name FROM workspaces ORDER BY id")] == ["Personal", "Work"]
    finally:
        conn.close()


def test_a_failing_migration_leaves_the_database_at_the_previous_version(db_path: Path) -> None:
    broken = Migration(NEXT, "broken", ("CREATE TABLE half (id INTEGER)", "THIS IS NOT SQL"))
    with Store.open(db_path):
        pass
    with pytest.raises(DatabaseUnusable):
        connect(db_path, (*MIGRATIONS, broken))
    conn = connect(db_path)
    try:
        assert schema_version(conn) == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half'").fetchone()[0] == 0
    finally:
        conn.close()


def test_a_database_from_a_newer_cortask_is_refused_untouched(db_path: Path) -> None:
    conn = connect(db_path, (*MIGRATIONS, V2))
    conn.close()
    before = db_path.read_bytes()
    with pytest.raises(SchemaTooNew) as caught:
        Store.open(db_path)
    assert caught.value.found == NEXT
    assert caught.value.supported == SCHEMA_VERSION
    message = str(caught.value)
    assert "newer version of Cortask" in message
    assert "Upgrade Cortask" in message
    assert str(db_path) in message
    assert isinstance(caught.value, DatabaseUnusable)
    assert db_path.read_bytes() == before


def test_a_file_that_is_not_sqlite_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not a database, just some text that is long enough" * 20)
    with pytest.raises(DatabaseUnusable, match=r"cannot be used as the Cortask database.*Move it aside"):
        Store.open(db_path)


def test_somebody_elses_sqlite_database_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    with pytest.raises(DatabaseUnusable, match="not Cortask's"):
        Store.open(db_path)
    conn = sqlite3.connect(db_path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    finally:
        conn.close()
    assert names == ["photos"]


def test_adopt_takes_over_only_a_database_of_the_named_tables(tmp_path: Path) -> None:
    v1 = Migration(1, "notes", ("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT)",))
    ours, mixed = sqlite3.connect(tmp_path / "ours.db"), sqlite3.connect(tmp_path / "mixed.db")
    for conn in (ours, mixed):
        conn.isolation_level = None
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.execute("INSERT INTO notes (text) VALUES ('kept')")
    mixed.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    assert migrate(ours, "ours.db", (v1,), adopt={"notes"}) == 1
    assert ours.execute("SELECT text FROM notes").fetchall() == [("kept",)]
    with pytest.raises(DatabaseUnusable, match="not Cortask's"):
        migrate(mixed, "mixed.db", (v1,), adopt={"notes"})
    assert schema_version(mixed) == 0
    ours.close()
    mixed.close()


def test_an_unwritable_location_says_what_to_check(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for path in (blocker / "cortask.db", blocker / "sub" / "cortask.db"):
        with pytest.raises(DatabaseUnusable, match=r"Cannot create the Cortask database.*CORTASK_HOME"):
            Store.open(path)


# --- lifecycle ------------------------------------------------------------------------------


def test_closed_store_refuses_calls_and_close_is_idempotent(db_path: Path) -> None:
    store = Store.open(db_path)
    store.close()
    store.close()
    assert store.closed
    with pytest.raises(StoreClosed, match="open it again"):
        list_workspaces(store)


def test_two_connections_see_each_others_commits(db_path: Path) -> None:
    with Store.open(db_path) as first, Store.open(db_path) as second:
        create_workspace(first, "Work")
        assert [w.name for w in list_workspaces(second)] == ["Personal", "Work"]
        assert len(list_workspaces(first)) == 2


def test_a_writer_kept_out_by_another_process_gets_store_busy(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_MS", 50)
    with Store.open(db_path) as first, Store.open(db_path) as second:
        with first.transaction():
            create_workspace(first, "Work")
            with pytest.raises(StoreBusy, match="locked by another process"):
                create_workspace(second, "Other")
            assert [w.name for w in list_workspaces(second)] == ["Personal"]  # readers are not blocked
        create_workspace(second, "Other")
        assert [w.name for w in list_workspaces(first)] == ["Personal", "Work", "Other"]
