"""`AsyncStore`: the same repositories as `Store`, awaited, without ever blocking the event loop.

Writes run on one dedicated worker thread (the writer), so its SQLite connection is only ever used
by that thread and writes run one at a time in the order they were made; the writes waiting at the
same moment share one commit (`GroupCommit`), and none returns before its commit is on disk. Reads (`@readonly`
methods, and functions given to `read`) run on a second thread with their own connection: in WAL
mode they never wait for a writer, so a write that waits out the busy timeout (another process
holds the lock, a full disk) does not hold up the page's status. A read awaited after a write
sees it. A task that is cancelled while its call is running does not undo the call: it completes
(committed or rolled back as a whole) on its thread, and only the result is dropped.

``await astore.journal.record(...)`` is ``store.journal.record(...)`` run on the worker: the
repositories are the same classes in their `Async` mode (see cortask.store.base). Several calls
that must be atomic together go through `run` with a function that uses `Store.transaction()`::

    def answer(store: Store) -> None:
        with store.transaction():
            store.sessions.append(session, Role.ASSISTANT, reply, message_id=sent_id)
            store.outbox.mark_sent(item_id, sent_id)

    await astore.run(answer)

A function that only reads (``with store.read()``) goes through `read` instead.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from cortask.group_commit import GroupCommit
from cortask.store.activity import ActivityRepository
from cortask.store.agents import AgentRepository
from cortask.store.approvals import ApprovalRepository
from cortask.store.base import Async, Reader
from cortask.store.db import Clock, connect_reader, utcnow
from cortask.store.errors import StoreClosed
from cortask.store.journal import JournalRepository
from cortask.store.outbox import OutboxRepository
from cortask.store.sessions import SessionRepository
from cortask.store.store import Store
from cortask.store.whatsapp import WhatsAppRepository
from cortask.store.workspaces import WorkspaceRepository

__all__ = ["AsyncStore"]

P = ParamSpec("P")
R = TypeVar("R")


class AsyncStore:
    """Open with ``await AsyncStore.open()``; close with ``await store.aclose()`` or ``async with``."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        reader: Store | None = None,
        read_executor: Executor | None = None,
    ) -> None:
        """`reader` (a `connect_reader` connection) and its `read_executor`: without them reads share the writer."""
        self._sync = store
        self._executor = executor
        self._reader = reader if reader is not None and read_executor is not None else store
        self._read_executor = read_executor if reader is not None and read_executor is not None else executor
        self._closed = False
        offload = self._submit
        read = Reader(self._reader, self._submit_read)
        self.workspaces = WorkspaceRepository[Async](store, offload, read)
        self.whatsapp = WhatsAppRepository[Async](store, offload, read)
        self.agents = AgentRepository[Async](store, offload, read)
        self.sessions = SessionRepository[Async](store, offload, read)
        self.journal = JournalRepository[Async](store, offload, read)
        self.outbox = OutboxRepository[Async](store, offload, read)
        self.activity = ActivityRepository[Async](store, offload, read)
        self.approvals = ApprovalRepository[Async](store, offload, read)

    @classmethod
    async def open(
        cls,
        path: Path | str | None = None,
        *,
        environ: Mapping[str, str] = os.environ,
        clock: Clock = utcnow,
    ) -> AsyncStore:
        executor = GroupCommit("cortask-store")
        read_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cortask-store-read")
        loop = asyncio.get_running_loop()
        try:
            store = await loop.run_in_executor(
                executor, functools.partial(Store.open, path, environ=environ, clock=clock)
            )
        except BaseException:
            executor.shutdown(wait=False)
            read_executor.shutdown(wait=False)
            raise
        try:  # after the writer: it created and migrated the file
            reader = await loop.run_in_executor(
                read_executor, lambda: Store(connect_reader(store.path), path=store.path, clock=clock)
            )
        except BaseException:
            await loop.run_in_executor(executor, store.close)
            executor.shutdown(wait=False)
            read_executor.shutdown(wait=False)
            raise
        executor.database = store  # from now on, writes waiting at the same moment share a commit
        return cls(store, executor, reader, read_executor)

    @property
    def sync(self) -> Store:
        """The wrapped Store, for code already running on the worker thread (inside `run`)."""
        return self._sync

    @property
    def path(self) -> Path:
        return self._sync.path

    @property
    def closed(self) -> bool:
        return self._closed

    async def run(self, function: Callable[Concatenate[Store, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``function(store, *args, **kwargs)`` on the worker thread and return its result."""
        return await self._submit(functools.partial(function, self._sync, *args, **kwargs))

    async def read(self, function: Callable[Concatenate[Store, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``function(store, *args, **kwargs)``, which only reads, on the reader's thread and connection."""
        return await self._submit_read(functools.partial(function, self._reader, *args, **kwargs))

    async def aclose(self) -> None:
        """Finish the calls already made, close the database, stop the worker. Idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            if self._reader is not self._sync:  # first, so the writer's close is the last and checkpoints the WAL
                await loop.run_in_executor(self._read_executor, self._reader.close)
            # The writer finishes what was submitted and stops; the close then runs alone, never
            # inside a group of writes.
            await asyncio.to_thread(self._executor.shutdown, wait=True)
            await asyncio.to_thread(self._sync.close)
        finally:
            self._read_executor.shutdown(wait=False)
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _submit(self, call: Callable[[], R]) -> R:
        if self._closed:
            raise StoreClosed("The Cortask store is closed: open it again with AsyncStore.open().")
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def _submit_read(self, call: Callable[[], R]) -> R:
        if self._closed:
            raise StoreClosed("The Cortask store is closed: open it again with AsyncStore.open().")
        return await asyncio.get_running_loop().run_in_executor(self._read_executor, call)
