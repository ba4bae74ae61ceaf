"""A look at an auth directory without owning it: is a device linked, and who holds the link now.

`AuthStore.open` takes the directory's lock and creates what is missing; `cortask whatsapp status`
must do neither (another process may own the link, and looking should change nothing).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from cortask.channels.whatsapp.authstore import DB_FILE, LOCK_FILE, account_in_creds


@dataclass(frozen=True, slots=True)
class LinkInfo:
    linked: bool
    account: str | None = None  # our own JID, when linked
    in_use_by: str | None = None  # the lock owner's line, when a process holds the link
    problem: str | None = None  # why the stored credentials could not be read


def peek_link(directory: Path) -> LinkInfo:
    in_use_by = lock_holder(directory)
    db = directory / DB_FILE
    if not db.exists():
        return LinkInfo(False, in_use_by=in_use_by)
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT json FROM creds WHERE id = 1").fetchall()
        finally:
            conn.close()
        me = account_in_creds(rows[0][0] if rows else None)
    except (sqlite3.Error, ValueError, AttributeError) as exc:
        problem = f"the WhatsApp credentials in {directory} cannot be read ({exc})"
        return LinkInfo(False, in_use_by=in_use_by, problem=problem)
    account = str(me["id"]) if me and me.get("id") else None
    return LinkInfo(bool(me), account, in_use_by)


def lock_holder(directory: Path) -> str | None:
    """The owner line of the process holding the directory's lock, or None when it is free."""
    path = directory / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            with contextlib.suppress(OSError):
                return path.read_text().strip() or "another process"
            return "another process"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
