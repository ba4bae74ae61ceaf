"""Durability: what was committed is there after a reopen or a crash, and nothing else is."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from store_support import (
    chat_mappings,
    create_workspace,
    find_workspace,
    journal_mark_answered,
    list_workspaces,
    map_chat,
    outbox_get,
    workspace_for_chat,
)

import cortask
from cortask.store import JournalState, OutboxState, Store

ME = "4915100000000@s.whatsapp.net"
CHAT = "4915123456789@s.whatsapp.net"
SID = "whatsapp:" + CHAT

WRITER = """
import sys, time
from cortask.store import Store
from store_support import create_workspace

ME, CHAT = "4915100000000@s.whatsapp.net", "4915123456789@s.whatsapp.net"
store = Store.open(sys.argv[1])
if sys.argv[2] == "loop":
    i = 0
    while True:
        with store.transaction():  # the journal entry and its turn: both or neither
            store.journal.record(ME, CHAT, f"M{i}", CHAT, f"text {i}")
            store.sessions.append("whatsapp:" + CHAT, "user", f"text {i}", message_id=f"M{i}")
        print(i, flush=True)  # acknowledged only once committed
        i += 1
else:
    for i in range(10):
        store.journal.record(ME, CHAT, f"M{i}", CHAT, f"text {i}")
    with store.transaction():
        for j in range(500):
            store.journal.record(ME, CHAT, f"U{j}", CHAT, "never committed")
        create_workspace(store, "Never committed")
        print("inside", flush=True)
        time.sleep(60)
"""


def start_writer(db: Path, mode: str) -> subprocess.Popen[str]:
    src = str(Path(cortask.__file__).resolve().parents[1])
    here = str(Path(__file__).resolve().parent)  # for store_support
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, here, os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def kill(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL, stderr
    return stderr


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def _everything(store: Store, workspace_id: int) -> tuple[object, ...]:
    """All that the test below wrote, read back."""
    return (
        list_workspaces(store),
        store.whatsapp.settings(workspace_id),
        store.agents.get(workspace_id),
        chat_mappings(store),
        store.sessions.history(SID),
        store.journal.get(ME, CHAT, "M1"),
        store.journal.pending(),
        store.outbox.pending(),
    )


def test_everything_is_there_after_close_and_reopen(tmp_path: Path) -> None:
    db = tmp_path / "cortask.db"
    with Store.open(db) as store:
        work = create_workspace(store, "Work")
        store.whatsapp.set_enabled(work.id)
        store.whatsapp.update_settings(work.id, default_region="DE", answer_groups=True)
        store.whatsapp.add_contact(work.id, "0151 23456789", "read", "Anna")
        store.whatsapp.set_allowed_users(work.id, ["+1 212 555 0100", "x"])
        store.agents.set(work.id, "openai", {"api_key": "sk-1", "model": "m"})
        map_chat(store, CHAT, work.id)
        store.sessions.append(SID, "user", "hello", message_id="M1")
        store.journal.record(ME, CHAT, "M1", CHAT, "hello")
        store.journal.record(ME, CHAT, "M2", CHAT, "second")
        journal_mark_answered(store, ME, CHAT, "M1", reply_message_id="R1", reply_text="hi")
        item = store.outbox.enqueue(CHAT, "queued", in_reply_to="M2", account=ME)
        before = _everything(store, work.id)
    with Store.open(db) as store:
        after = _everything(store, work.id)
        assert after == before
        assert workspace_for_chat(store, CHAT) == work
        assert store.journal.record(ME, CHAT, "M1", CHAT, "redelivered") is False
        assert outbox_get(store, item.id).state is OutboxState.PENDING


@pytest.mark.e2e  # starts a process
def test_a_killed_writer_leaves_only_whole_committed_transactions(tmp_path: Path) -> None:
    db = tmp_path / "cortask.db"
    writer = start_writer(db, "loop")
    acknowledged = -1
    assert writer.stdout is not None
    while acknowledged < 60:
        line = writer.stdout.readline()
        assert line, f"the writer stopped early: {writer.stderr.read() if writer.stderr else ''}"
        acknowledged = int(line)
    kill(writer)
    assert Path(f"{db}-wal").exists()  # the reopen below has to recover from the WAL

    with Store.open(db) as store:
        entries = store.journal.pending()
        turns = store.sessions.history(SID)
    assert integrity(db) == "ok"
    ids = [e.message_id for e in entries]
    assert len(ids) > acknowledged  # every acknowledged commit survived ...
    assert ids == [f"M{i}" for i in range(len(ids))]  # ... in order, without gaps
    assert [t.message_id for t in turns] == ids  # and each transaction is whole: entry and turn together
    assert all(e.state is JournalState.PENDING for e in entries)


@pytest.mark.e2e  # starts a process
def test_a_transaction_in_progress_at_a_crash_leaves_nothing(tmp_path: Path) -> None:
    db = tmp_path / "cortask.db"
    writer = start_writer(db, "open-transaction")
    assert writer.stdout is not None
    line = writer.stdout.readline()
    assert line.strip() == "inside", writer.stderr.read() if writer.stderr else ""
    kill(writer)

    with Store.open(db) as store:
        assert [e.message_id for e in store.journal.pending()] == [f"M{i}" for i in range(10)]
        assert find_workspace(store, "Never committed") is None
        assert store.journal.record(ME, CHAT, "U0", CHAT, "now committed") is True
    assert integrity(db) == "ok"
