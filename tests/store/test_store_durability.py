"""Durability: what was committed is there after a reopen or a crash, and nothing else is."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import cortask
from cortask.store import JournalState, OutboxState, Store

ME = "4915100000000@s.whatsapp.net"
CHAT = "4915123456789@s.whatsapp.net"
SID = "whatsapp:" + CHAT

WRITER = """
import sys, time
from cortask.store import Store

ME, CHAT = "4915100000000@s.whatsapp.net", "4915123456789@s.whatsapp.net"
store = Store.open(sys.argv[1])
if sys.argv[2] == "loop":
    i = 0
    while True:
        with store.transaction():  # the journal entry and its turn: both or neither
            store.journal_record(ME, CHAT, f"M{i}", CHAT, f"text {i}")
            store.append_message("whatsapp:" + CHAT, "user", f"text {i}", message_id=f"M{i}")
        print(i, flush=True)  # acknowledged only once committed
        i += 1
else:
    for i in range(10):
        store.journal_record(ME, CHAT, f"M{i}", CHAT, f"text {i}")
    with store.transaction():
        for j in range(500):
            store.journal_record(ME, CHAT, f"U{j}", CHAT, "never committed")
        store.create_workspace("Never committed")
        print("inside", flush=True)
        time.sleep(60)
"""


def start_writer(db: Path, mode: str) -> subprocess.Popen[str]:
    src = str(Path(cortask.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
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


def test_everything_is_there_after_close_and_reopen(tmp_path: Path) -> None:
    db = tmp_path / "cortask.db"
    with Store.open(db) as store:
        work = store.create_workspace("Work")
        store.set_whatsapp_enabled(work.id)
        store.update_whatsapp_settings(work.id, default_region="DE", answer_groups=True)
        store.add_trusted_contact(work.id, "0151 23456789", "read", "Anna")
        store.set_allowed_users(work.id, ["+1 212 555 0100", "x"])
        store.set_agent_settings(work.id, "openai", {"api_key": "sk-1", "model": "m"})
        store.map_chat(CHAT, work.id)
        store.append_message(SID, "user", "hello", message_id="M1")
        store.journal_record(ME, CHAT, "M1", CHAT, "hello")
        store.journal_record(ME, CHAT, "M2", CHAT, "second")
        store.journal_mark_answered(ME, CHAT, "M1", reply_message_id="R1", reply_text="hi")
        item = store.outbox_enqueue(CHAT, "queued", in_reply_to="M2", account=ME)
        before = (
            store.list_workspaces(),
            store.whatsapp_settings(work.id),
            store.agent_settings(work.id),
            store.chat_mappings(),
            store.history(SID),
            store.journal_get(ME, CHAT, "M1"),
            store.journal_pending(),
            store.outbox_pending(),
        )
    with Store.open(db) as store:
        after = (
            store.list_workspaces(),
            store.whatsapp_settings(work.id),
            store.agent_settings(work.id),
            store.chat_mappings(),
            store.history(SID),
            store.journal_get(ME, CHAT, "M1"),
            store.journal_pending(),
            store.outbox_pending(),
        )
        assert after == before
        assert store.workspace_for_chat(CHAT) == work
        assert store.journal_record(ME, CHAT, "M1", CHAT, "redelivered") is False
        assert store.outbox_get(item.id).state is OutboxState.PENDING


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
        entries = store.journal_pending()
        turns = store.history(SID)
    assert integrity(db) == "ok"
    ids = [e.message_id for e in entries]
    assert len(ids) > acknowledged  # every acknowledged commit survived ...
    assert ids == [f"M{i}" for i in range(len(ids))]  # ... in order, without gaps
    assert [t.message_id for t in turns] == ids  # and each transaction is whole: entry and turn together
    assert all(e.state is JournalState.PENDING for e in entries)


def test_a_transaction_in_progress_at_a_crash_leaves_nothing(tmp_path: Path) -> None:
    db = tmp_path / "cortask.db"
    writer = start_writer(db, "open-transaction")
    assert writer.stdout is not None
    line = writer.stdout.readline()
    assert line.strip() == "inside", writer.stderr.read() if writer.stderr else ""
    kill(writer)

    with Store.open(db) as store:
        assert [e.message_id for e in store.journal_pending()] == [f"M{i}" for i in range(10)]
        assert store.find_workspace("Never committed") is None
        assert store.journal_record(ME, CHAT, "U0", CHAT, "now committed") is True
    assert integrity(db) == "ok"
