"""The WhatsApp auth state (credentials and Signal keys), kept by Python in SQLite.

Baileys' own multi-file store writes files in place and turns an unreadable `creds.json` into a
new, unpaired identity. This store instead: commits a multi-key write all or nothing, makes it
durable (fsync) before the sidecar is told it succeeded, refuses to touch credentials it cannot
read, and lets one process at a time own the directory. It also keeps what we sent, so Baileys can
answer retry receipts by re-encrypting instead of leaving "Waiting for this message" on the phone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from cortask.channels.whatsapp.jid import same_chat
from cortask.group_commit import GroupCommit, Nesting
from cortask.migrations import Migration, UnusableDatabase, migrate

log = logging.getLogger("cortask.whatsapp")

DB_FILE = "auth.db"
LOCK_FILE = "owner.lock"

# Numbered like the main database's (cortask.store.schema), with the same cortask.migrations:
# append, never edit one that shipped.
# Version 1 is the schema auth directories had before they were versioned, hence IF NOT EXISTS:
# opening such a directory adopts its tables (`_ADOPTED`) with their rows as they are.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "credentials, Signal keys, sent messages kept for retry receipts",
        (
            "CREATE TABLE IF NOT EXISTS creds (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL)",
            """
            CREATE TABLE IF NOT EXISTS keys (
                type TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (type, id)
            ) WITHOUT ROWID
            """,
            """
            CREATE TABLE IF NOT EXISTS sent (
                id TEXT PRIMARY KEY, jid TEXT NOT NULL, text TEXT NOT NULL, sent_at REAL NOT NULL
            )
            """,
            "CREATE INDEX IF NOT EXISTS sent_by_time ON sent (sent_at)",
        ),
    ),
)
_ADOPTED = frozenset({"creds", "keys", "sent"})

KEY_TYPES = frozenset(
    {
        "pre-key",
        "session",
        "sender-key",
        "sender-key-memory",
        "app-state-sync-key",
        "app-state-sync-version",
        "lid-mapping",
        "device-list",
        "tctoken",
        "identity-key",
    }
)


class AuthStoreError(Exception):
    """Base class: every message says what happened and what to do."""


class CredentialsUnreadable(AuthStoreError):
    pass


class AuthDirInUse(AuthStoreError):
    pass


class StoreWriteFailed(AuthStoreError):
    pass


def _secure_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


class AuthStore:
    """One owner per auth directory; all methods are synchronous (call them off the event loop)."""

    def __init__(self, directory: Path, db: sqlite3.Connection, lock_fd: int) -> None:
        self.directory = directory
        self._db = db
        self._lock_fd = lock_fd
        # The sidecar's requests run on a worker thread while the channel may read or close the
        # store from the event loop: one lock makes every use of the connection exclusive.
        self._mutex = threading.RLock()
        self._nesting = Nesting()
        self._closed = False
        self._writer: GroupCommit | None = None

    @property
    def writer(self) -> GroupCommit:
        """The one thread that writes this store, started on first use: the sidecar's requests and
        our own records of what we send go through it in order, so the writes waiting at the same
        moment share one commit (a reply's record and the keys of the message it answers) instead
        of taking turns at the connection's lock, each with its own fsync (issue #18)."""
        with self._mutex:
            if self._closed:
                raise AuthStoreError("the auth store is closed")
            if self._writer is None:
                self._writer = GroupCommit("authstore")
                self._writer.database = self
            return self._writer

    @classmethod
    def open(cls, directory: Path) -> AuthStore:
        _secure_dir(directory)
        lock_fd = _acquire_lock(directory)
        try:
            db = _open_db(directory / DB_FILE)
        except (sqlite3.DatabaseError, UnusableDatabase) as exc:
            os.close(lock_fd)
            raise _unreadable(directory, exc) from exc
        except BaseException:
            os.close(lock_fd)
            raise
        store = cls(directory, db, lock_fd)
        store._check_readable()
        return store

    def close(self) -> None:
        with self._mutex:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=True)  # what was asked to be written is written first
        with self._mutex:
            self._closed = True
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = -1

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._mutex:
            if self._closed:
                raise AuthStoreError("the auth store is closed")
            return list(self._db.execute(sql, params))

    def _check_readable(self) -> None:
        try:
            rows = self._query("SELECT json FROM creds WHERE id = 1")
            if rows:
                json.loads(rows[0][0])
        except (sqlite3.DatabaseError, ValueError) as exc:
            self.close()
            raise _unreadable(self.directory, exc) from exc

    # -- credentials ------------------------------------------------------------------------------

    def creds(self) -> str | None:
        rows = self._query("SELECT json FROM creds WHERE id = 1")
        return str(rows[0][0]) if rows else None

    def is_linked(self) -> bool:
        """True when the stored credentials belong to a paired device (Baileys' `creds.me`)."""
        return self.linked_account() is not None

    def linked_account(self) -> dict[str, str] | None:
        return account_in_creds(self.creds())

    def set_creds(self, creds_json: str) -> None:
        json.loads(creds_json)  # never store what we could not read back
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO creds (id, json) VALUES (1, ?)", (creds_json,))

    # -- Signal keys ------------------------------------------------------------------------------

    def get_keys(self, key_type: str, ids: Iterable[str]) -> dict[str, str]:
        _check_type(key_type)
        wanted = list(ids)
        found: dict[str, str] = {}
        for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._query(f"SELECT id, value FROM keys WHERE type = ? AND id IN ({marks})", (key_type, *chunk))
            found.update({str(i): str(v) for i, v in rows})
        return found

    def set_keys(self, items: Iterable[tuple[str, str, str | None]]) -> None:
        """Apply every (type, id, value-or-None-to-delete) in one durable transaction."""
        batch = list(items)
        for key_type, _, _ in batch:
            _check_type(key_type)
        with self._write() as db:
            for key_type, key_id, value in batch:
                if value is None:
                    db.execute("DELETE FROM keys WHERE type = ? AND id = ?", (key_type, key_id))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO keys (type, id, value) VALUES (?, ?, ?)", (key_type, key_id, value)
                    )

    def phone_for_lid(self, lid_jid: str) -> str | None:
        """The phone-number JID Baileys recorded for a LID JID (its `lid-mapping` keys hold
        "<lid user>_reverse" -> phone user), or None when it never learned it."""
        user = lid_jid.partition("@")[0].partition(":")[0]
        stored = self.get_keys("lid-mapping", [f"{user}_reverse"]).get(f"{user}_reverse")
        try:
            phone_user = json.loads(stored) if stored else None
        except json.JSONDecodeError:
            return None
        return f"{phone_user}@s.whatsapp.net" if isinstance(phone_user, str) and phone_user.isdigit() else None

    def count_keys(self, key_type: str) -> int:
        return int(self._query("SELECT count(*) FROM keys WHERE type = ?", (key_type,))[0][0])

    # -- what we sent (for retry receipts) -------------------------------------------------------

    def remember_sent(self, message_id: str, jid: str, text: str, at: float | None = None) -> None:
        now = time.time() if at is None else at
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO sent VALUES (?, ?, ?, ?)", (message_id, jid, text, now))

    def prune_sent(self, before: float) -> int:
        """Forget what we sent before `before` (Unix seconds): the service's retention schedule
        calls this; a retry receipt for something that old gets no text. Returns how many."""
        with self._write() as db:
            return db.execute("DELETE FROM sent WHERE sent_at < ?", (before,)).rowcount

    def has_sent(self, message_id: str) -> bool:
        """Whether `message_id` is one we reserved for a message of ours (kept as long as the text)."""
        return bool(self._query("SELECT 1 FROM sent WHERE id = ?", (message_id,)))

    def sent_text(self, message_id: str, chat: str | None) -> str | None:
        """What we sent under `message_id`, only when asked for by the chat we sent it to: a
        retry receipt makes Baileys re-encrypt the text to whoever asks, so an id alone (ids are
        visible to everyone in a group, guessable, or forwarded) must not reveal another chat's
        reply. The chat may be named by LID while we stored its phone JID, or the other way."""
        rows = self._query("SELECT jid, text FROM sent WHERE id = ?", (message_id,))
        if not rows or chat is None:
            return None
        stored_chat, text = str(rows[0][0]), str(rows[0][1])
        return text if same_chat(stored_chat, chat, self.phone_for_lid) else None

    # -- messages the sidecar could not hand over ------------------------------------------------

    def spilled(self) -> list[tuple[Path, list[dict[str, Any]]]]:
        """Message batches a sidecar wrote here because we had not journaled them when it had to
        stop, oldest file first. Remove each file with `discard_spill` once its messages are
        recorded. A line that cannot be read is logged and left out (never a crash at start)."""
        found = []
        for path in sorted(self.directory.glob("inbound-spill-*.jsonl"), key=lambda p: p.stat().st_mtime):
            batches = []
            for line in path.read_text(errors="replace").splitlines():
                try:
                    batch = json.loads(line)
                except json.JSONDecodeError:
                    log.warning("skipped an unreadable line in %s", path.name)
                    continue
                if isinstance(batch, dict) and isinstance(batch.get("messages"), list):
                    batches.append(batch)
            found.append((path, batches))
        return found

    @staticmethod
    def discard_spill(path: Path) -> None:
        path.unlink(missing_ok=True)

    # -- internals -------------------------------------------------------------------------------

    def write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One durable write transaction; inside another it is a savepoint (so a `GroupCommit` can
        run several writes under one commit, each rolled back alone if it raises)."""
        return self._write()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._mutex:
            if self._closed:
                raise AuthStoreError("the auth store is closed")
            outermost = not self._nesting.depth
            try:
                with self._nesting.enter(self._db) as db:
                    yield db
            except sqlite3.OperationalError as exc:
                if not outermost:
                    raise  # the outermost says it (a group commit fails its whole group on this)
                raise StoreWriteFailed(
                    f"could not save WhatsApp keys in {self.directory}: {exc}. Free disk space or fix the "
                    "folder's permissions; the channel stops rather than lose keys."
                ) from exc

    @staticmethod
    def remove(directory: Path) -> None:
        """Delete the auth directory entirely (logout). Safe when it does not exist."""
        if directory.exists():
            shutil.rmtree(directory)


def _unreadable(directory: Path, exc: Exception) -> CredentialsUnreadable:
    return CredentialsUnreadable(
        f"the WhatsApp credentials in {directory} cannot be read ({exc}). They were left untouched. "
        "Restore a backup of that folder, or log out to remove it and link again."
    )


def _check_type(key_type: str) -> None:
    if key_type not in KEY_TYPES:
        raise ValueError(f"unknown Signal key type {key_type!r}")


def _open_db(path: Path) -> sqlite3.Connection:
    fresh = not path.exists()
    if fresh:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")  # a commit is on disk before we answer Baileys
        migrate(db, path, MIGRATIONS, adopt=_ADOPTED)
    except (sqlite3.DatabaseError, UnusableDatabase):
        db.close()
        raise
    db.isolation_level = None
    for suffix in ("", "-wal", "-shm"):
        p = path.with_name(path.name + suffix)
        if p.exists():
            os.chmod(p, 0o600)
    return db


def account_in_creds(creds_json: str | None) -> dict[str, str] | None:
    """The paired device in Baileys' stored credentials (`creds.me`), or None before pairing."""
    creds = json.loads(creds_json) if creds_json else {}
    if creds.get("pairingCode") and not creds.get("account"):
        return None  # a pairing code was requested (which sets `me`), but no phone linked with it
    me = creds.get("me")
    return dict(me) if isinstance(me, dict) and me else None


def _acquire_lock(directory: Path) -> int:
    path = directory / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = Path(path).read_text().strip() or "another process"
        os.close(fd)
        raise AuthDirInUse(
            f"the WhatsApp link in {directory} is already in use by {owner}. Stop that instance first: "
            "two connections on one link make WhatsApp disconnect both and double every reply."
        ) from None
    os.ftruncate(fd, 0)
    command = describe_command(sys.argv)
    what = f" ({command})" if command else ""
    os.write(fd, f"process {os.getpid()}{what} on {socket.gethostname()} since {time.ctime()}\n".encode())
    return fd


def describe_command(argv: list[str]) -> str:
    """The command a person would recognise, for the lock's owner line: `cortask whatsapp link`,
    also when started as `python -m cortask whatsapp link`."""
    if not argv or not argv[0]:
        return ""
    program = Path(argv[0])
    name = program.parent.name if program.name == "__main__.py" else program.name
    words = []
    for arg in argv[1:3]:
        if arg.startswith("-"):
            break  # options may hold secrets (--token): the subcommand is enough to tell who
        words.append(arg)
    return " ".join([name, *words])
