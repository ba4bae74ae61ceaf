"""The SQLite file: where it lives, how it is opened, its schema brought up to date, and
`Database`, the one object that owns the connection and its transactions.

One file, ``$CORTASK_HOME/cortask.db`` (``~/.cortask/cortask.db`` by default). Opened with:

* ``journal_mode=WAL``: readers never block the writer, and a crash leaves only whole transactions;
* ``synchronous=FULL``: a commit is on disk (fsync of the WAL) before it returns, so a journal
  entry recorded before a message is processed survives a power cut;
* ``foreign_keys=ON`` and a ``busy_timeout``, so another process (the CLI) briefly holding the
  write lock makes us wait instead of fail.

The home directory is created 0700 and the database file 0600 (SQLite gives the -wal and -shm
files the database file's mode). Existing files and directories keep the mode they have.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from cortask import migrations as migrations_
from cortask.group_commit import Nesting
from cortask.home import cortask_home, private_file
from cortask.migrations import Migration, schema_version
from cortask.store.errors import DatabaseFailed, DatabaseUnusable, SchemaTooNew, StoreBusy, StoreClosed
from cortask.store.schema import MIGRATIONS

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DB_FILE",
    "Clock",
    "Database",
    "connect",
    "connect_reader",
    "decode_time",
    "default_database_path",
    "encode_time",
    "migrate",
    "schema_version",
    "utcnow",
]

DB_FILE = "cortask.db"
BUSY_TIMEOUT_MS = 5000


def default_database_path(environ: Mapping[str, str] = os.environ) -> Path:
    return cortask_home(environ) / DB_FILE


def connect(path: Path, migrations: Sequence[Migration] = MIGRATIONS) -> sqlite3.Connection:
    """Open (creating if needed) the database at `path`, configured and migrated.

    The connection is in autocommit mode (``isolation_level=None``): callers open their own
    transactions. It may be used from any thread, one at a time.
    """
    _create_private(path)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise DatabaseUnusable(
            f"Cannot open the Cortask database {path}: {exc}. Check the path and its permissions."
        ) from exc
    try:
        _configure(conn, path)
        migrate(conn, path, migrations)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.DatabaseError):
            raise DatabaseUnusable(
                f"{path} cannot be used as the Cortask database ({exc}). "
                "Move it aside (Cortask then starts with a new, empty one) or restore it from a backup."
            ) from exc
        raise
    return conn


def connect_reader(path: Path) -> sqlite3.Connection:
    """A second connection to a database `connect` has already opened and migrated, for reads only.

    In WAL mode its reads never wait for a writer (ours or another process's), so the page's status
    answers while a write waits out the busy timeout. ``query_only`` makes a stray write fail loudly.
    """
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only = ON")
    except sqlite3.Error as exc:
        raise DatabaseUnusable(
            f"Cannot open the Cortask database {path} for reading: {exc}. Check the path and its permissions."
        ) from exc
    return conn


def migrate(
    conn: sqlite3.Connection,
    path: Path | str,
    migrations: Sequence[Migration] = MIGRATIONS,
    *,
    adopt: Collection[str] = (),
) -> int:
    """`cortask.migrations.migrate`, with its refusals as the store's errors (and what to do)."""
    try:
        return migrations_.migrate(conn, path, migrations, adopt=adopt)
    except migrations_.SchemaTooNew as exc:
        raise SchemaTooNew(str(exc), found=exc.found, supported=exc.supported) from None
    except migrations_.NotOurDatabase as exc:
        raise DatabaseUnusable(f"{exc} Point CORTASK_HOME at another directory, or move the file aside.") from None


Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Database:
    """The open connection and its transactions; the repositories of `Store` all use this one.

    Safe to share between threads (a lock serialises the connection), but it blocks: asyncio code
    goes through `AsyncStore`. `read()` and `write()` are for the repositories (and test
    helpers): everything else calls a repository, and groups several calls into one atomic
    write with `transaction()`.
    """

    def __init__(self, conn: sqlite3.Connection, *, path: Path, clock: Clock = utcnow) -> None:
        conn.row_factory = sqlite3.Row
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        self._clock = clock
        self._lock = threading.RLock()
        self._nesting = Nesting()  # the outermost transaction BEGINs, inner ones are savepoints

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

    def now(self) -> str:
        """The clock's time, encoded as stored."""
        return encode_time(self._clock())

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Make the store calls inside one atomic write: all of them are committed, or none.

        Nests: an inner block that raises is rolled back to where it started (a savepoint), and
        the outer block decides about the rest.
        """
        with self.write():
            yield

    def write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """The connection inside a write transaction (taking the write lock at once)."""
        return self._tx("BEGIN IMMEDIATE")

    def read(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """The connection inside a read transaction: one consistent snapshot."""
        return self._tx("BEGIN")

    @contextlib.contextmanager
    def _tx(self, begin: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StoreClosed("The Cortask store is closed: open it again with Store.open().")
            outermost = not self._nesting.depth
            try:
                with self._nesting.enter(conn, begin) as inside:
                    yield inside
            except sqlite3.OperationalError as exc:
                if not outermost:
                    raise  # the outermost says it (a group commit fails its whole group on this)
                raise self._failed(exc) from exc

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


# --- times ---------------------------------------------------------------------------------


def encode_time(value: datetime) -> str:
    """UTC ISO 8601 with microseconds: fixed width, so text order is time order."""
    if value.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def decode_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- internals -----------------------------------------------------------------------------


def _create_private(path: Path) -> None:
    """The directory (0700) and the database with its WAL files (0600), created or tightened."""
    try:
        private_file(path)
        for sidecar in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if sidecar.exists():
                private_file(sidecar)  # SQLite gives these the database's mode, but an old one may be loose
    except OSError as exc:
        raise DatabaseUnusable(
            f"Cannot create the Cortask database {path}: {exc.strerror}. "
            "Check that its directory can be created and written, or set CORTASK_HOME to one that can."
        ) from exc


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    if mode is None or str(mode[0]).lower() != "wal":
        raise DatabaseUnusable(
            f"SQLite could not put {path} in WAL mode (it reported {mode[0] if mode else 'nothing'!r}). "
            "Keep CORTASK_HOME on a local file system."
        )
    conn.execute("PRAGMA synchronous = FULL")
