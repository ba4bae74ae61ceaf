"""A failing store loses nothing (issue #13, section 2): a database held locked by another process
for longer than the busy timeout, and a disk that fills. Real Baileys, the real sidecar, wasim,
SQLite on a real (small) file system; every message is answered exactly once after the fault."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from testkit.channel import MakeChannel, link, texts_received, wait_state

from cortask.channels.whatsapp.channel import WhatsAppChannel
from cortask.channels.whatsapp.inbound import InboundText
from cortask.channels.whatsapp.state import ChannelStatus, ConnectionState
from cortask.contacts.access import TrustedContact
from cortask.store import AsyncStore, JournalState
from cortask.store.db import BUSY_TIMEOUT_MS
from cortask.store_journal import StoreJournal
from wasim.server.app import Wasim

pytestmark = pytest.mark.e2e

ADA = "+4915123456789"
GRACE = "+447911123456"
TRUSTED = (TrustedContact.parse(ADA, "write", name="Ada"), TrustedContact.parse(GRACE, "write", name="Grace"))
# Held well past the store's busy timeout, so writes fail rather than wait it out.
LOCK_SECONDS = BUSY_TIMEOUT_MS / 1000 + 4

HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


def _failing(status: ChannelStatus) -> bool:
    return any(note.kind == "store_failing" for note in status.notes)


async def _answered(sim: Wasim, phone: str, count: int, timeout: float = 60) -> list[str]:
    if len(texts_received(sim, phone)) < count:
        await sim.events.wait_for(
            "contact.received", lambda e: len(texts_received(sim, phone)) >= count, since=0, timeout=timeout
        )
    return texts_received(sim, phone)


async def _all_answered(store: AsyncStore, account: str, expected: int) -> None:
    """Every journal entry of the account answered (the last reply is marked just after it went out)."""
    async with asyncio.timeout(20):
        while True:
            if not await store.journal.pending(account) and not await store.outbox.pending():
                return
            await asyncio.sleep(0.1)


async def _linked(sim: Wasim, make_channel: MakeChannel, store: AsyncStore, **options: object) -> WhatsAppChannel:
    channel = await make_channel(sim, ledger=StoreJournal(store), trusted_contacts=TRUSTED, **options)
    await link(channel, sim)
    sim.add_contact(ADA, "Ada")
    sim.add_contact(GRACE, "Grace")
    return channel


@contextlib.asynccontextmanager
async def _locked(path: Path, seconds: float) -> AsyncIterator[asyncio.subprocess.Process]:
    """Another process holding the database with BEGIN EXCLUSIVE for `seconds`."""
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_LOCK, str(path), str(seconds), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert (await holder.stdout.readline()).strip() == b"locked"
        yield holder
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    async with await AsyncStore.open(tmp_path / "cortask.db") as opened:
        yield opened


async def test_a_database_locked_past_the_busy_timeout_loses_nothing_and_answers_once(
    store: AsyncStore, sim: Wasim, make_channel: MakeChannel, tmp_path: Path
) -> None:
    channel = await _linked(sim, make_channel, store)
    account = (channel.account or {})["id"]
    async with _locked(tmp_path / "cortask.db", LOCK_SECONDS) as holder:
        for text in ("one", "two", "three"):
            await sim.messaging.send(ADA, text)
        await sim.messaging.send(GRACE, "hi")
        failing = await wait_state(channel, ConnectionState.OPEN, where=_failing, timeout=LOCK_SECONDS + 5)
        assert "database" in failing.notes[0].sentence
        assert texts_received(sim, ADA) == [] and texts_received(sim, GRACE) == []
        await holder.wait()  # the other process commits and lets go

    assert await _answered(sim, ADA, 3) == ["echo: one", "echo: two", "echo: three"]
    assert await _answered(sim, GRACE, 1) == ["echo: hi"]
    await wait_state(channel, ConnectionState.OPEN, where=lambda s: not _failing(s), timeout=10)
    await _all_answered(store, account, 4)
    await asyncio.sleep(1.5)  # nothing more comes
    assert texts_received(sim, ADA) == ["echo: one", "echo: two", "echo: three"]
    assert texts_received(sim, GRACE) == ["echo: hi"]
    kinds = [a["kind"] for a in channel.activity]
    assert "store_failing" in kinds and "store_recovered" in kinds


async def test_messages_not_journaled_when_the_service_stops_are_kept_by_the_sidecar_and_answered_once(
    store: AsyncStore, sim: Wasim, make_channel: MakeChannel, tmp_path: Path
) -> None:
    """Stopped while the database is locked: the sidecar was never told the batches were
    recorded, so it spills them; the next start records and answers each once."""
    channel = await _linked(sim, make_channel, store)
    account = (channel.account or {})["id"]
    async with _locked(tmp_path / "cortask.db", LOCK_SECONDS) as holder:
        await sim.messaging.send(ADA, "before the stop")
        await sim.messaging.send(GRACE, "me too")
        await wait_state(channel, ConnectionState.OPEN, where=_failing, timeout=LOCK_SECONDS + 5)
        await channel.close()
        spilled = list((tmp_path / "whatsapp-auth").glob("inbound-spill-*.jsonl"))
        assert spilled, "the sidecar kept what was not acknowledged"
        await holder.wait()

    again = await make_channel(sim, ledger=StoreJournal(store), trusted_contacts=TRUSTED)
    await again.start()
    assert await _answered(sim, ADA, 1) == ["echo: before the stop"]
    assert await _answered(sim, GRACE, 1) == ["echo: me too"]
    await _all_answered(store, account, 2)
    await asyncio.sleep(1.5)
    assert texts_received(sim, ADA) == ["echo: before the stop"]
    assert texts_received(sim, GRACE) == ["echo: me too"]
    assert not list((tmp_path / "whatsapp-auth").glob("inbound-spill-*.jsonl"))


# -- a full disk ------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs of its own: a real file system that really fills up (needs root to mount)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(directory: Path) -> Path:
    """Write a file until the file system is full; removing it frees the disk."""
    filler = directory / "filler"
    block = b"\0" * (64 * 1024)
    with filler.open("wb") as out:
        try:
            while True:
                out.write(block)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    # a last partial block may still fit: fill to the last byte
    with contextlib.suppress(OSError), filler.open("ab") as out:
        while True:
            out.write(b"\0" * 512)
            out.flush()
    return filler


async def test_a_full_disk_loses_nothing_and_answers_once_when_it_frees(
    small_disk: Path, sim: Wasim, make_channel: MakeChannel
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_then_echo(message: InboundText) -> str:
        if message.text == "think":
            started.set()
            await release.wait()
        return f"echo: {message.text}"

    async with await AsyncStore.open(small_disk / "cortask.db") as store:
        channel = await make_channel(sim, slow_then_echo, ledger=StoreJournal(store), trusted_contacts=TRUSTED)
        await link(channel, sim)
        sim.add_contact(ADA, "Ada")
        sim.add_contact(GRACE, "Grace")
        account = (channel.account or {})["id"]
        sent = [(ADA, await sim.messaging.send(ADA, "think"))]  # journaled before the disk fills; its reply after
        await asyncio.wait_for(started.wait(), 20)

        with contextlib.closing(sqlite3.connect(small_disk / "cortask.db")) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL emptied: every new write needs new blocks
        filler = _fill(small_disk)
        release.set()
        sent.append((ADA, await sim.messaging.send(ADA, "while full")))
        sent.append((GRACE, await sim.messaging.send(GRACE, "hello?")))
        await wait_state(channel, ConnectionState.OPEN, where=_failing, timeout=20)
        await asyncio.sleep(2)  # retried meanwhile, still full: nothing recorded, nothing sent
        assert texts_received(sim, GRACE) == []

        filler.unlink()
        assert await _answered(sim, ADA, 2) == ["echo: think", "echo: while full"]
        assert await _answered(sim, GRACE, 1) == ["echo: hello?"]
        await wait_state(channel, ConnectionState.OPEN, where=lambda s: not _failing(s), timeout=10)
        await _all_answered(store, account, 3)
        await asyncio.sleep(1.5)
        assert texts_received(sim, ADA) == ["echo: think", "echo: while full"]
        assert texts_received(sim, GRACE) == ["echo: hello?"]
        for phone, message_id in sent:
            entry = await store.journal.get(account, phone[1:] + "@s.whatsapp.net", message_id)
            assert entry is not None and entry.state is JournalState.ANSWERED
        await channel.close()
