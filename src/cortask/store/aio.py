"""`AsyncStore`: the same API as `Store`, awaited, without ever blocking the event loop.

Every call runs on one dedicated worker thread, so the SQLite connection is only ever used by
that thread and calls run one at a time in the order they were made. A task that is cancelled
while its call is running does not undo the call: it completes (committed or rolled back as a
whole) on the worker, and only the result is dropped.

Several calls that must be atomic together go through `run` with a function that uses
`Store.transaction()`::

    def answer(store: Store) -> None:
        with store.transaction():
            store.append_message(session, Role.ASSISTANT, reply, message_id=sent_id)
            store.journal_mark_answered(account, chat, message_id, reply_message_id=sent_id)

    await astore.run(answer)
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from cortask.store.errors import StoreClosed
from cortask.store.repo import Clock, Store, _utcnow

__all__ = ["AsyncStore"]

P = ParamSpec("P")
R = TypeVar("R")


def _offload(
    method: Callable[Concatenate[Store, P], R],
) -> Callable[Concatenate[AsyncStore, P], Coroutine[Any, Any, R]]:
    """An async method that runs `method` of the wrapped Store on the worker thread."""

    async def call(self: AsyncStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self._submit(functools.partial(method, self._sync, *args, **kwargs))

    call.__name__ = call.__qualname__ = method.__name__
    call.__doc__ = method.__doc__
    return call


class AsyncStore:
    """Open with ``await AsyncStore.open()``; close with ``await store.aclose()`` or ``async with``."""

    def __init__(self, store: Store, executor: ThreadPoolExecutor) -> None:
        self._sync = store
        self._executor = executor
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: Path | str | None = None,
        *,
        environ: Mapping[str, str] = os.environ,
        clock: Clock = _utcnow,
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

    # The Store API, method for method.
    ensure_default_workspace = _offload(Store.ensure_default_workspace)
    create_workspace = _offload(Store.create_workspace)
    get_workspace = _offload(Store.get_workspace)
    find_workspace = _offload(Store.find_workspace)
    list_workspaces = _offload(Store.list_workspaces)
    default_workspace = _offload(Store.default_workspace)
    rename_workspace = _offload(Store.rename_workspace)
    delete_workspace = _offload(Store.delete_workspace)

    whatsapp_settings = _offload(Store.whatsapp_settings)
    access_policy = _offload(Store.access_policy)
    whatsapp_workspaces = _offload(Store.whatsapp_workspaces)
    set_whatsapp_enabled = _offload(Store.set_whatsapp_enabled)
    set_whatsapp_paused = _offload(Store.set_whatsapp_paused)
    update_whatsapp_settings = _offload(Store.update_whatsapp_settings)
    trusted_contacts = _offload(Store.trusted_contacts)
    add_trusted_contact = _offload(Store.add_trusted_contact)
    update_trusted_contact = _offload(Store.update_trusted_contact)
    remove_trusted_contact = _offload(Store.remove_trusted_contact)
    allowed_users = _offload(Store.allowed_users)
    set_allowed_users = _offload(Store.set_allowed_users)

    agent_settings = _offload(Store.agent_settings)
    agent_settings_for_display = _offload(Store.agent_settings_for_display)
    set_agent_settings = _offload(Store.set_agent_settings)
    clear_agent_settings = _offload(Store.clear_agent_settings)

    map_chat = _offload(Store.map_chat)
    unmap_chat = _offload(Store.unmap_chat)
    chat_mappings = _offload(Store.chat_mappings)
    workspace_for_chat = _offload(Store.workspace_for_chat)

    ensure_session = _offload(Store.ensure_session)
    get_session = _offload(Store.get_session)
    list_sessions = _offload(Store.list_sessions)
    append_message = _offload(Store.append_message)
    has_message = _offload(Store.has_message)
    history = _offload(Store.history)
    clear_history = _offload(Store.clear_history)

    journal_record = _offload(Store.journal_record)
    journal_get = _offload(Store.journal_get)
    journal_begin_attempt = _offload(Store.journal_begin_attempt)
    journal_mark_answered = _offload(Store.journal_mark_answered)
    journal_mark_failed = _offload(Store.journal_mark_failed)
    journal_mark_skipped = _offload(Store.journal_mark_skipped)
    journal_retry = _offload(Store.journal_retry)
    journal_pending = _offload(Store.journal_pending)
    journal_counts = _offload(Store.journal_counts)
    journal_prune = _offload(Store.journal_prune)

    outbox_enqueue = _offload(Store.outbox_enqueue)
    outbox_get = _offload(Store.outbox_get)
    outbox_pending = _offload(Store.outbox_pending)
    outbox_mark_sent = _offload(Store.outbox_mark_sent)
    outbox_mark_failed = _offload(Store.outbox_mark_failed)
    outbox_prune = _offload(Store.outbox_prune)
