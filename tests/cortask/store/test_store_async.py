"""AsyncStore: the Store API from asyncio; writes on one worker thread, reads on another, never blocking the loop."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import sys
import threading
import time
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from store_support import (
    create_workspace,
    default_workspace,
    find_workspace,
    get_workspace,
    journal_begin_attempt,
    journal_counts,
    journal_mark_answered,
    list_workspaces,
)

from cortask.store import AsyncStore, DatabaseFailed, Duplicate, JournalState, NotFound, Role, Store, StoreClosed
from cortask.store.base import offloadable, readonly
from cortask.store.prune import footprint

ME = "4915100000000@s.whatsapp.net"


@pytest.fixture
async def astore(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    async with await AsyncStore.open(tmp_path / "cortask.db") as opened:
        yield opened


def test_every_repository_method_has_an_async_twin(tmp_path: Path) -> None:
    # A public method without @offloadable would run on the event loop in AsyncStore, blocking it.
    def public(cls: type) -> dict[str, object]:
        return {name: value for name, value in vars(cls).items() if not name.startswith("_")}

    with Store.open(tmp_path / "cortask.db") as store:
        astore = AsyncStore(store, ThreadPoolExecutor(max_workers=1))
        names = ("workspaces", "whatsapp", "agents", "sessions", "journal", "outbox")
        for name in names:
            repo, arepo = getattr(store, name), getattr(astore, name)
            assert type(repo) is type(arepo)
            methods = public(type(repo))
            assert methods, name
            for method, value in methods.items():
                assert isinstance(value, offloadable), f"{name}.{method} is not @offloadable"
                assert not inspect.iscoroutinefunction(getattr(repo, method)), method
                assert inspect.iscoroutinefunction(getattr(arepo, method)), method
                assert getattr(arepo, method).__doc__ == getattr(repo, method).__doc__


async def test_calls_work_and_errors_come_through(astore: AsyncStore) -> None:
    personal = await astore.run(default_workspace)
    assert personal.name == "Personal"
    work = await astore.run(create_workspace, "Work")
    assert await astore.run(get_workspace, work.id) == work
    with pytest.raises(NotFound):
        await astore.run(get_workspace, 99)
    await astore.whatsapp.add_contact(work.id, "+49 151 23456789", "write")
    assert (await astore.whatsapp.access_policy(work.id)).decide("+4915123456789").runs_agent
    assert await astore.journal.record(ME, "a@s.whatsapp.net", "M1", "a@s.whatsapp.net", "hi") is True
    assert await astore.journal.record(ME, "a@s.whatsapp.net", "M1", "a@s.whatsapp.net", "hi") is False


async def test_open_uses_cortask_home(tmp_path: Path) -> None:
    store = await AsyncStore.open(environ={"CORTASK_HOME": str(tmp_path / "h")})
    try:
        assert store.path == tmp_path / "h" / "cortask.db"
    finally:
        await store.aclose()


async def test_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = await AsyncStore.open(tmp_path / "cortask.db")
    await store.aclose()
    await store.aclose()  # idempotent
    assert store.closed
    assert store.sync.closed
    with pytest.raises(StoreClosed):
        await store.run(list_workspaces)
    with pytest.raises(StoreClosed):
        await store.workspaces.ensure_default()


async def test_many_tasks_at_once(astore: AsyncStore) -> None:
    chats = [f"49151000{i:05d}@s.whatsapp.net" for i in range(40)]

    async def converse(chat: str) -> None:
        for n in range(5):
            mid = f"{chat}-{n}"
            assert await astore.journal.record(ME, chat, mid, chat, f"msg {n}")
            await astore.run(journal_begin_attempt, ME, chat, mid)
            await astore.sessions.append("whatsapp:" + chat, Role.USER, f"msg {n}", message_id=mid)
            await astore.sessions.append("whatsapp:" + chat, Role.ASSISTANT, f"re {n}", message_id="R" + mid)
            await astore.run(journal_mark_answered, ME, chat, mid, reply_message_id="R" + mid)

    await asyncio.gather(*(converse(chat) for chat in chats))
    counts = await astore.run(journal_counts)
    assert counts[JournalState.ANSWERED] == 200
    assert counts[JournalState.PENDING] == 0
    for chat in chats[:5]:
        turns = await astore.sessions.history("whatsapp:" + chat)
        assert [t.text for t in turns] == [text for n in range(5) for text in (f"msg {n}", f"re {n}")]


async def test_racing_duplicates_are_recorded_once(astore: AsyncStore) -> None:
    results = await asyncio.gather(
        *(astore.journal.record(ME, "a@s.whatsapp.net", "SAME", "a@s.whatsapp.net", "hi") for _ in range(50))
    )
    assert results.count(True) == 1
    outcomes = await asyncio.gather(*(astore.run(create_workspace, "Work") for _ in range(20)), return_exceptions=True)
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert all(isinstance(o, Duplicate) for o in outcomes if isinstance(o, BaseException))
    item = await astore.outbox.enqueue("a@s.whatsapp.net", "reply", in_reply_to="SAME")
    sent = await asyncio.gather(*(astore.outbox.mark_sent(item.id, f"S{i}") for i in range(20)))
    assert sent.count(True) == 1


async def test_all_calls_run_on_one_worker_thread(astore: AsyncStore) -> None:
    idents = await asyncio.gather(*(astore.run(lambda _store: threading.get_ident()) for _ in range(30)))
    assert len(set(idents)) == 1
    assert idents[0] != threading.get_ident()


async def test_repository_calls_run_on_the_worker_thread(tmp_path: Path) -> None:
    threads: list[int] = []

    def clock() -> datetime:  # the store reads its clock inside each write
        threads.append(threading.get_ident())
        return datetime.now(UTC)

    async with await AsyncStore.open(tmp_path / "cortask.db", clock=clock) as astore:
        idents = await asyncio.gather(*(astore.run(lambda _store: threading.get_ident()) for _ in range(3)))
        threads.clear()
        await astore.journal.record(ME, "a@s.whatsapp.net", "M1", "a@s.whatsapp.net", "hi")
        await astore.sessions.append("whatsapp:a@s.whatsapp.net", Role.USER, "hi", message_id="M1")
    assert threads and set(threads) == {idents[0]} and idents[0] != threading.get_ident()


async def test_the_event_loop_is_never_blocked(astore: AsyncStore) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    def slow(store: Store) -> int:
        time.sleep(0.3)  # stands in for a slow disk
        return len(list_workspaces(store))

    task = asyncio.create_task(ticker())
    try:
        assert await astore.run(slow) == 1
    finally:
        task.cancel()
    assert ticks >= 10


async def test_run_with_a_transaction_is_atomic(astore: AsyncStore) -> None:
    def answer(store: Store, fail: bool) -> None:
        with store.transaction():
            store.journal.record(ME, "a@s.whatsapp.net", "M1", "a@s.whatsapp.net", "q")
            store.sessions.append("whatsapp:a@s.whatsapp.net", "user", "q", message_id="M1")
            if fail:
                raise RuntimeError("agent crashed")

    with pytest.raises(RuntimeError):
        await astore.run(answer, True)
    assert await astore.journal.get(ME, "a@s.whatsapp.net", "M1") is None
    assert await astore.sessions.history("whatsapp:a@s.whatsapp.net") == []
    await astore.run(answer, fail=False)
    assert len(await astore.sessions.history("whatsapp:a@s.whatsapp.net")) == 1


async def test_a_cancelled_call_still_completes_and_the_store_stays_usable(astore: AsyncStore) -> None:
    started = threading.Event()

    def slow_write(store: Store) -> None:
        started.set()
        time.sleep(0.1)
        create_workspace(store, "Written anyway")

    task = asyncio.create_task(astore.run(slow_write))
    await asyncio.to_thread(started.wait, 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await astore.run(find_workspace, "Written anyway") is not None  # queued after the write


# -- reads on their own connection and thread (issue #18) -------------------------------------------

HOLD_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


async def _reads_answer_while_the_write_waits(astore: AsyncStore, release: Callable[[], Awaitable[None]]) -> None:
    """With the database locked by someone else: a write waits; every kind of read answers meanwhile."""
    ws = (await astore.run(default_workspace)).id
    write = asyncio.create_task(astore.journal.record(ME, "a@s.whatsapp.net", "M1", "a@s.whatsapp.net", "hi"))
    await asyncio.sleep(0.2)  # the write is on the writer, waiting for the lock
    assert not write.done()
    assert [c.name for c in await astore.whatsapp.contacts(ws)] == ["Ada"]
    assert (await astore.whatsapp.settings(ws)).enabled is False
    assert await astore.activity.last_at(ws, ("received",)) is None
    assert (await astore.read(footprint)).bytes > 0
    assert await astore.journal.get(ME, "a@s.whatsapp.net", "M1") is None
    assert not write.done()  # all of that while the write still waited
    await release()
    assert await write is True  # the write went through once the lock was let go
    assert await astore.journal.get(ME, "a@s.whatsapp.net", "M1") is not None


async def test_a_read_completes_while_a_write_waits_for_another_connection(astore: AsyncStore) -> None:
    await astore.whatsapp.add_contact((await astore.run(default_workspace)).id, "+49 151 23456789", "write", "Ada")
    other = sqlite3.connect(astore.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")

    async def release() -> None:
        other.execute("COMMIT")

    try:
        await _reads_answer_while_the_write_waits(astore, release)
    finally:
        other.close()


@pytest.mark.e2e
async def test_a_read_completes_while_a_write_waits_for_another_process(astore: AsyncStore) -> None:
    await astore.whatsapp.add_contact((await astore.run(default_workspace)).id, "+49 151 23456789", "write", "Ada")
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_LOCK, str(astore.path), stdin=PIPE, stdout=PIPE
    )
    assert holder.stdin is not None and holder.stdout is not None
    stdin = holder.stdin

    async def release() -> None:
        stdin.write(b"go\n")
        await stdin.drain()

    try:
        assert (await holder.stdout.readline()).strip() == b"locked"
        await _reads_answer_while_the_write_waits(astore, release)
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()


async def test_a_read_after_a_write_sees_it(astore: AsyncStore) -> None:
    ws = (await astore.run(default_workspace)).id
    for n in range(20):
        await astore.whatsapp.add_contact(ws, f"+49 151 2345{n:04d}", "write")
        assert len(await astore.whatsapp.contacts(ws)) == n + 1
        await astore.journal.record(ME, "a@s.whatsapp.net", f"M{n}", "a@s.whatsapp.net", "hi")
        assert await astore.journal.get(ME, "a@s.whatsapp.net", f"M{n}") is not None


async def test_reads_run_on_their_own_thread_and_cannot_write(astore: AsyncStore) -> None:
    writer = await astore.run(lambda _store: threading.get_ident())
    readers = await asyncio.gather(*(astore.read(lambda _store: threading.get_ident()) for _ in range(10)))
    assert len(set(readers)) == 1 and readers[0] not in (writer, threading.get_ident())
    with pytest.raises(DatabaseFailed):
        await astore.read(create_workspace, "Work")  # query_only: a write through the reader fails loudly
    assert await astore.run(find_workspace, "Work") is None


async def test_the_readonly_methods_only_read(tmp_path: Path) -> None:
    # A method marked @readonly that wrote would fail on the reader's query_only connection.
    with Store.open(tmp_path / "cortask.db") as store:
        for name in ("workspaces", "whatsapp", "agents", "sessions", "journal", "outbox", "activity", "approvals"):
            repo = type(getattr(store, name))
            for method, value in vars(repo).items():
                if isinstance(value, readonly):
                    source = inspect.getsource(value.method)
                    assert "_db.read()" in source and "_db.write()" not in source, f"{name}.{method}"


# -- writes waiting at the same moment share one commit (issue #18) ---------------------------------


class _Commits:
    """Counts the commits on the writer's connection (each is one fsync with synchronous=FULL)."""

    def __init__(self, astore: AsyncStore) -> None:
        self.count = 0
        astore.sync._conn.set_trace_callback(self._seen)  # type: ignore[union-attr]

    def _seen(self, statement: str) -> None:
        if statement.strip().upper() == "COMMIT":
            self.count += 1


async def test_writes_waiting_at_once_share_a_commit_and_each_returns_after_it(astore: AsyncStore) -> None:
    commits = _Commits(astore)
    chats = [f"49151000{i:05d}@s.whatsapp.net" for i in range(40)]
    results = await asyncio.gather(*(astore.journal.record(ME, c, "M1", c, "hi") for c in chats))
    assert results == [True] * 40
    assert 1 <= commits.count < 40  # shared: far fewer commits than writes
    # Every write is committed, seen from another connection, once its caller heard back.
    with Store.open(astore.path) as other:
        assert all(other.journal.get(ME, c, "M1") is not None for c in chats)


async def test_a_failing_write_in_a_group_fails_alone(astore: AsyncStore) -> None:
    ws = (await astore.run(default_workspace)).id
    outcomes = await asyncio.gather(
        astore.whatsapp.add_contact(ws, "+49 151 11111111", "write"),
        astore.whatsapp.add_contact(ws, "+49 151 11111111", "write"),  # a duplicate: refused
        astore.whatsapp.add_contact(ws, "+49 151 22222222", "write"),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], Duplicate)
    assert not isinstance(outcomes[0], BaseException) and not isinstance(outcomes[2], BaseException)
    assert sorted(c.phone for c in await astore.whatsapp.contacts(ws)) == ["+4915111111111", "+4915122222222"]


async def test_a_database_failure_fails_the_whole_group_and_commits_none_of_it(astore: AsyncStore) -> None:
    def broken(store: Store) -> None:
        with store.write() as db:
            db.execute("INSERT INTO no_such_table VALUES (1)")  # an OperationalError, like a full disk

    chats = [f"49151000{i:05d}@s.whatsapp.net" for i in range(10)]
    calls = [astore.journal.record(ME, c, "M1", c, "hi") for c in chats]
    outcomes = await asyncio.gather(*calls[:5], astore.run(broken), *calls[5:], return_exceptions=True)
    failed = [o for o in outcomes if isinstance(o, DatabaseFailed)]
    assert failed, outcomes
    recorded = [c for c in chats if await astore.journal.get(ME, c, "M1") is not None]
    # What a caller heard as done is committed; what it heard as failed is not.
    assert len(recorded) == sum(o is True for o in outcomes)
    assert len(recorded) + len(failed) == len(outcomes)
