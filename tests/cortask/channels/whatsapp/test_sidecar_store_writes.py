"""How Python serves the sidecar's key writes when one fails (issue #18): the sidecar sends the
next Signal transaction's keys while the last ones are still being flushed, so a write that fails
must take every write after it down too (they were built on the lost one), while a request the
store merely turned down (nothing written) does not. The end-to-end paths: test_failing_store.py,
test_kill_loop.py, test_sidecar_protocol_fuzz.py."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cortask.channels.whatsapp import wire
from cortask.channels.whatsapp.authstore import AuthStore, AuthStoreError, StoreWriteFailed
from cortask.channels.whatsapp.sidecar import Sidecar, SidecarInstall


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AuthStore]:
    opened = AuthStore.open(tmp_path / "auth")
    yield opened
    opened.close()


@pytest.fixture
def sidecar(store: AuthStore, tmp_path: Path) -> Sidecar:
    # Never started: its store side only (its thread is the store's, stopped when the store closes).
    return Sidecar(SidecarInstall(tmp_path, "node", "test"), store)


def write(sidecar: Sidecar, key_id: str, key_type: str = "session") -> Any:
    """Serve one keys.set as the store's thread does, in order, and wait for it."""
    request = wire.KeysSet(1, ((key_type, key_id, '{"v":1}'),))
    return sidecar._store_thread.submit(sidecar._store_ops[wire.KeysSet], request).result(timeout=10)


def test_every_write_after_a_failed_one_is_refused_and_not_kept(
    sidecar: Sidecar, store: AuthStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store.set_keys

    def disk_full(items: Any) -> None:
        raise StoreWriteFailed("could not save WhatsApp keys: database or disk is full")

    monkeypatch.setattr(store, "set_keys", disk_full)
    with pytest.raises(StoreWriteFailed):
        write(sidecar, "first")
    monkeypatch.setattr(store, "set_keys", real)  # the disk has room again: too late for this sidecar
    with pytest.raises(AuthStoreError, match="earlier write of WhatsApp keys failed"):
        write(sidecar, "second")
    assert store.get_keys("session", ["first", "second"]) == {}


def test_a_group_whose_commit_failed_stops_later_writes_too(sidecar: Sidecar, store: AuthStore) -> None:
    failed: concurrent.futures.Future[wire.StoreResult] = concurrent.futures.Future()
    failed.set_exception(StoreWriteFailed("could not save WhatsApp keys: disk I/O error"))
    sidecar._note_failed_write(failed)  # as the store's thread does when a whole group fails to commit
    with pytest.raises(AuthStoreError, match="disk I/O error"):
        write(sidecar, "after")
    assert store.get_keys("session", ["after"]) == {}


def test_a_request_turned_down_writes_nothing_and_later_writes_go_on(sidecar: Sidecar, store: AuthStore) -> None:
    with pytest.raises(ValueError, match="unknown Signal key type"):
        write(sidecar, "x", key_type="../../etc")
    assert write(sidecar, "next") == wire.Done()
    assert store.get_keys("session", ["next"]) == {"next": '{"v":1}'}


def test_writes_queued_behind_a_busy_store_all_land_and_a_read_after_them_sees_them(
    sidecar: Sidecar, store: AuthStore
) -> None:
    op = sidecar._store_ops
    with store.write():  # hold the store so the requests below queue up behind it, as in a burst
        futures = [
            sidecar._store_thread.submit(op[wire.KeysSet], wire.KeysSet(n, (("session", f"k{n}", f'"{n}"'),)))
            for n in range(5)
        ]
        read = sidecar._store_thread.submit(op[wire.KeysGet], wire.KeysGet(9, "session", ("k0", "k4")))
    assert [f.result(timeout=10) for f in futures] == [wire.Done()] * 5
    assert read.result(timeout=10) == wire.KeysFound({"k0": '"0"', "k4": '"4"'})


def test_a_replys_record_and_the_sidecars_keys_waiting_together_share_one_commit(
    sidecar: Sidecar, store: AuthStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits = []
    outermost = store.write

    def counted() -> Any:
        commits.append(1)
        return outermost()

    monkeypatch.setattr(store, "write", counted)  # a group opens one transaction through this
    busy = threading.Event()
    store.writer.submit(busy.wait, 10)  # the thread is busy: what follows waits, as behind a flush
    keys = sidecar._store_thread.submit(sidecar._store_ops[wire.KeysSet], wire.KeysSet(1, (("session", "a", '"1"'),)))
    sent = store.writer.submit(store.remember_sent, "3EB0AAAA", "4915123456789@s.whatsapp.net", "hello")
    busy.set()
    assert keys.result(timeout=10) == wire.Done() and sent.result(timeout=10) is None
    assert len(commits) == 1
    assert store.get_keys("session", ["a"]) == {"a": '"1"'}
    assert store.sent_text("3EB0AAAA", "4915123456789@s.whatsapp.net") == "hello"


def test_closing_the_store_writes_what_was_queued_first(tmp_path: Path) -> None:
    store = AuthStore.open(tmp_path / "auth")
    with store._write():
        queued = store.writer.submit(store.remember_sent, "3EB0BBBB", "5215512345678@s.whatsapp.net", "hola")
    store.close()
    assert queued.done() and queued.exception() is None
    again = AuthStore.open(tmp_path / "auth")
    try:
        assert again.sent_text("3EB0BBBB", "5215512345678@s.whatsapp.net") == "hola"
    finally:
        again.close()
