"""The auth store's promises: all or nothing, durable, one owner, unreadable never overwritten."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from cortask.channels.whatsapp.authstore import (
    MIGRATIONS,
    AuthDirInUse,
    AuthStore,
    CredentialsUnreadable,
    StoreWriteFailed,
    describe_command,
)
from cortask.migrations import schema_version


def test_files_are_private_to_the_user(tmp_path: Path) -> None:
    store = AuthStore.open(tmp_path / "auth")
    store.set_creds(json.dumps({"me": None}))
    store.close()
    assert stat.S_IMODE((tmp_path / "auth").stat().st_mode) == 0o700
    for f in (tmp_path / "auth").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_a_multi_key_write_commits_all_or_nothing(tmp_path: Path) -> None:
    store = AuthStore.open(tmp_path / "auth")
    store.set_keys([("session", "a.0", '{"v": 1}'), ("pre-key", "1", '{"k": 1}')])
    with pytest.raises(ValueError, match="unknown Signal key type"):
        store.set_keys([("session", "a.0", '{"v": 2}'), ("not-a-type", "x", "{}")])
    assert store.get_keys("session", ["a.0"]) == {"a.0": '{"v": 1}'}
    store.set_keys([("session", "a.0", None), ("pre-key", "2", '{"k": 2}')])  # None deletes
    assert store.get_keys("session", ["a.0"]) == {}
    assert store.get_keys("pre-key", ["1", "2", "3"]) == {"1": '{"k": 1}', "2": '{"k": 2}'}
    store.close()
    reopened = AuthStore.open(tmp_path / "auth")
    assert reopened.get_keys("pre-key", ["2"]) == {"2": '{"k": 2}'}


def test_every_baileys_key_type_round_trips(tmp_path: Path) -> None:
    store = AuthStore.open(tmp_path / "auth")
    types = [
        "pre-key", "session", "sender-key", "sender-key-memory", "app-state-sync-key",
        "app-state-sync-version", "lid-mapping", "device-list", "tctoken", "identity-key",
    ]  # fmt: skip
    store.set_keys([(t, f"id-{t}", json.dumps({"t": t})) for t in types])
    for t in types:
        assert store.get_keys(t, [f"id-{t}"]) == {f"id-{t}": json.dumps({"t": t})}


def test_one_owner_per_auth_directory(tmp_path: Path) -> None:
    first = AuthStore.open(tmp_path / "auth")
    with pytest.raises(AuthDirInUse, match=rf"in use by process {os.getpid()}"):
        AuthStore.open(tmp_path / "auth")
    first.close()
    AuthStore.open(tmp_path / "auth").close()  # free again once the owner closed it


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["/x/.venv/bin/cortask", "whatsapp", "link", "--json"], "cortask whatsapp link"),
        (["/x/src/cortask/__main__.py", "serve", "--token", "s3cret"], "cortask serve"),
        (["/usr/bin/pytest", "-q"], "pytest"),
        ([""], ""),
        ([], ""),
    ],
)
def test_the_owner_line_names_the_command_without_its_options(argv: list[str], shown: str) -> None:
    assert describe_command(argv) == shown


@pytest.mark.parametrize("damage", ["garbage_db", "garbage_creds"])
def test_unreadable_credentials_are_reported_and_left_untouched(tmp_path: Path, damage: str) -> None:
    auth = tmp_path / "auth"
    store = AuthStore.open(auth)
    store.set_creds(json.dumps({"me": {"id": "1:2@s.whatsapp.net"}}))
    if damage == "garbage_creds":
        with store._write() as db:  # simulate a damaged row, which set_creds itself refuses to write
            db.execute("UPDATE creds SET json = '{not json' WHERE id = 1")
    store.close()
    if damage == "garbage_db":
        (auth / "auth.db").write_bytes(b"this is not a database, it was damaged" * 100)
        for extra in ("auth.db-wal", "auth.db-shm"):
            (auth / extra).unlink(missing_ok=True)
    before = {p.name: p.read_bytes() for p in auth.iterdir() if p.name != "owner.lock"}
    with pytest.raises(CredentialsUnreadable, match=r"cannot be read.*left untouched"):
        AuthStore.open(auth)
    after = {p.name: p.read_bytes() for p in auth.iterdir() if p.name != "owner.lock"}
    assert after == before, "nothing was overwritten"


def test_a_write_that_cannot_be_made_durable_raises_instead_of_pretending(tmp_path: Path) -> None:
    store = AuthStore.open(tmp_path / "auth")
    store._db.execute("PRAGMA query_only = ON")  # any write now fails inside SQLite
    with pytest.raises(StoreWriteFailed, match="could not save WhatsApp keys"):
        store.set_keys([("session", "a.0", "{}")])


def test_sent_messages_are_remembered_for_retries_and_pruned_after_the_retention_period(tmp_path: Path) -> None:
    store = AuthStore.open(tmp_path / "auth")
    store.remember_sent("OLD", "a@s.whatsapp.net", "old text", at=1_000_000.0)
    store.remember_sent("NEW", "a@s.whatsapp.net", "new text", at=1_000_000.0 + 31 * 24 * 3600)
    assert store.sent_text("OLD", "a@s.whatsapp.net") == "old text"  # kept until the schedule prunes
    assert store.prune_sent(before=1_000_000.0 + 31 * 24 * 3600 - 30 * 24 * 3600) == 1
    assert store.sent_text("NEW", "a@s.whatsapp.net") == "new text"
    assert store.sent_text("OLD", "a@s.whatsapp.net") is None
    assert store.sent_text("MISSING", "a@s.whatsapp.net") is None


def test_a_retry_gets_our_text_only_from_the_chat_we_sent_it_to(tmp_path: Path) -> None:
    # A retry receipt makes Baileys re-encrypt the text to whoever asks: another chat that knows
    # (or guesses) our message id must get nothing.
    store = AuthStore.open(tmp_path / "auth")
    store.set_keys([("lid-mapping", "987654321012345_reverse", json.dumps("4915123456789"))])
    store.remember_sent("ID1", "4915123456789@s.whatsapp.net", "secret reply")
    store.remember_sent("ID2", "987654321012345@lid", "reply by lid")
    assert store.sent_text("ID1", "4915123456789@s.whatsapp.net") == "secret reply"
    assert store.sent_text("ID1", "4915123456789:3@s.whatsapp.net") == "secret reply"  # a device of the chat
    assert store.sent_text("ID1", "987654321012345@lid") == "secret reply"  # the same chat by its LID
    assert store.sent_text("ID2", "4915123456789@s.whatsapp.net") == "reply by lid"
    assert store.sent_text("ID1", "4915000000000@s.whatsapp.net") is None  # another contact
    assert store.sent_text("ID1", "111111111111111@lid") is None  # an unknown LID
    assert store.sent_text("ID1", "120363000000000000@g.us") is None  # a group
    assert store.sent_text("ID1", None) is None  # no chat named: nothing


def test_a_lid_is_resolved_from_the_mapping_baileys_stored(tmp_path: Path) -> None:
    # Baileys' LID mapping store writes "<pn user>" -> "<lid user>" and "<lid user>_reverse" -> "<pn user>".
    store = AuthStore.open(tmp_path / "auth")
    store.set_keys(
        [
            ("lid-mapping", "4915123456789", json.dumps("987654321012345")),
            ("lid-mapping", "987654321012345_reverse", json.dumps("4915123456789")),
            ("lid-mapping", "111_reverse", "not json"),
            ("lid-mapping", "222_reverse", json.dumps({"not": "a phone"})),
        ]
    )
    assert store.phone_for_lid("987654321012345@lid") == "4915123456789@s.whatsapp.net"
    assert store.phone_for_lid("987654321012345:3@lid") == "4915123456789@s.whatsapp.net"
    assert store.phone_for_lid("555@lid") is None  # never learned
    assert store.phone_for_lid("111@lid") is None
    assert store.phone_for_lid("222@lid") is None
    store.close()


# The tables exactly as auth directories were written before the auth store used the migration
# framework (no schema_version table): such a directory must open with its link intact.
_UNVERSIONED_DDL = """
CREATE TABLE IF NOT EXISTS creds (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
    type TEXT NOT NULL, id TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (type, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sent (
    id TEXT PRIMARY KEY, jid TEXT NOT NULL, text TEXT NOT NULL, sent_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_by_time ON sent (sent_at);
"""


def test_an_auth_directory_from_before_versioning_opens_with_its_link(tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    auth.mkdir(mode=0o700)
    creds = json.dumps({"me": {"id": "4915123456789:3@s.whatsapp.net", "name": "Ada"}})
    old = sqlite3.connect(auth / "auth.db")
    old.execute("PRAGMA journal_mode = WAL")
    old.executescript(_UNVERSIONED_DDL)
    old.execute("INSERT INTO creds (id, json) VALUES (1, ?)", (creds,))
    old.execute("INSERT INTO keys VALUES ('session', 'a.0', '{\"v\": 1}'), ('pre-key', '7', '{\"k\": 7}')")
    old.execute("INSERT INTO sent VALUES ('M1', 'a@s.whatsapp.net', 'hello', ?)", (time.time(),))
    old.commit()
    old.close()

    store = AuthStore.open(auth)
    assert store.creds() == creds
    assert store.linked_account() == {"id": "4915123456789:3@s.whatsapp.net", "name": "Ada"}
    assert store.get_keys("session", ["a.0"]) == {"a.0": '{"v": 1}'}
    assert store.get_keys("pre-key", ["7"]) == {"7": '{"k": 7}'}
    assert store.sent_text("M1", "a@s.whatsapp.net") == "hello"
    store.set_keys([("session", "a.1", "{}")])  # and it is writable as before
    store.close()

    with contextlib.closing(sqlite3.connect(auth / "auth.db")) as db:
        assert schema_version(db) == MIGRATIONS[-1].version  # now under the migration framework
    reopened = AuthStore.open(auth)  # and opens again once versioned
    assert reopened.get_keys("session", ["a.0", "a.1"]) == {"a.0": '{"v": 1}', "a.1": "{}"}
    reopened.close()


def test_an_auth_database_from_a_newer_cortask_is_left_untouched(tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    AuthStore.open(auth).close()
    with contextlib.closing(sqlite3.connect(auth / "auth.db")) as db:
        db.execute("INSERT INTO schema_version VALUES (99, 'from the future', '2030-01-01')")
        db.commit()
    with pytest.raises(CredentialsUnreadable, match=r"newer version of Cortask.*left untouched"):
        AuthStore.open(auth)
    with pytest.raises(CredentialsUnreadable):  # again: the lock was released, only the schema refuses
        AuthStore.open(auth)
