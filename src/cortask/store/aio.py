"""`AsyncStore`: the same repositories as `Store`, awaited, without ever blocking the event loop.

Every call runs on one dedicated worker thread, so the SQLite connection is only ever used by
that thread and calls run one at a time in the order they were made. A task that is cancelled
while its call is running does not undo the call: it completes (committed or rolled back as a
whole) on the worker, and only the result is dropped.

``await astore.journal.record(...)`` is ``store.journal.record(...)`` run on the worker: the
repositories are the same classes in their `Async` mode (see cortask.store.base). Several calls
that must be atomic together go through `run` with a function that uses `Store.transaction()`::

    def answer(store: Store) -> None:
        with store.transaction():
            store.sessions.append(session, Role.ASSISTANT, reply, message_id=sent_id)
            store.outbox.mark_sent(item_id, sent_id)

    await astore.run(answer)
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from cortask.store.activity import ActivityRepository
from cortask.store.agents import AgentRepository
from cortask.store.approvals import ApprovalRepository
from cortask.store.base import Async
from cortask.store.db import Clock, utcnow
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

    def __init__(self, store: Store, executor: ThreadPoolExecutor) -> None:
        self._sync = store
        self._executor = executor
        self._closed = False
        offload = self._submit
        self.workspaces = WorkspaceRepository[Async](store, offload)
        self.whatsapp = WhatsAppRepository[Async](store, offload)
        self.agents = AgentRepository[Async](store, offload)
        self.sessions = SessionRepository[Async](store, offload)
        self.journal = JournalRepository[Async](store, offload)
        self.outbox = OutboxRepository[Async](store, offload)
        self.activity = ActivityRepository[Async](store, offload)
        self.approvals = ApprovalRepository[Async](store, offload)

    @classmethod
    async def open(
        cls,
        path: Path | str | None = None,
        *,
        environ: Mapping[str, str] = os.environ,
        clock: Clock = utcnow,
    ) -> AsyncStore:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cortask-store")
        loop = asyncio.get_running_loop()
        try:
            store = await loop.run_in_executor(
                executor, functools.partial(Store.open, path, environ=environ, clock=clock)
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(store, executor)

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

    async def aclose(self) -> None:
        """Finish the calls already made, close the database, stop the worker. Idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._sync.close)
        finally:
            self._executor.shutdown(wait=False)  # the worker is idle: the close was the last call

    async def __aenter__(self) -> AsyncStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _submit(self, call: Callable[[], R]) -> R:
        if self._closed:
            raise StoreClosed("The Cortask store is closed: open it again with AsyncStore.open().")
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)
