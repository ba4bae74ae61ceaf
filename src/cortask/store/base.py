"""What every repository is: one aggregate's tables over the shared `Database`, in two flavours.

A repository is written once, synchronously. Its public methods are marked `@offloadable`, and
the mode it was created in decides what they return:

* ``Repo[Sync]`` (what `Store` hands out): the result, computed on the calling thread;
* ``Repo[Async]`` (what `AsyncStore` hands out): an awaitable; the same code runs on the store's
  worker thread, so the event loop never blocks on SQLite.

A method that only reads is marked `@readonly` instead: in AsyncStore it runs on the reader (its
own connection and thread), so it never queues behind a write that waits out the busy timeout
(WAL: readers never wait for the writer). A read awaited after a write sees that write.

mypy knows which: ``store.journal.record(...)`` is a ``bool``, ``astore.journal.record(...)`` an
``Awaitable[bool]``. A method body always runs against the synchronous twin, so a method may call
another one of its repository and get a plain result; shared SQL lives in module functions.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, Generic, NamedTuple, ParamSpec, Protocol, TypeVar, overload

from cortask.store.db import Database

__all__ = ["Async", "Mode", "Offload", "Reader", "Repository", "Sync", "offloadable", "readonly"]

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Mode:
    """How a repository's methods return: see `Sync` and `Async`."""


class Sync(Mode):
    """Methods return their results, blocking the calling thread."""


class Async(Mode):
    """Methods return awaitables; the work runs on the store's one worker thread."""


M = TypeVar("M", bound=Mode)


class Offload(Protocol):
    """Runs a call on the store's worker thread (AsyncStore's way of submitting work)."""

    def __call__(self, call: Callable[[], T], /) -> Awaitable[T]: ...


class Reader(NamedTuple):
    """Where `@readonly` methods of an async repository run: the reader's database and thread."""

    db: Database
    offload: Offload


class Repository(Generic[M]):
    """Create with ``Repo[Sync](db)`` or ``Repo[Async](db, offload, reader)``."""

    def __init__(self, db: Database, offload: Offload | None = None, reader: Reader | None = None) -> None:
        self._db = db
        self._offload = offload
        # The async flavour runs each method on a synchronous twin, on the worker thread.
        self._twin: Repository[Any] = self if offload is None else type(self)(db)
        # ... and each read-only method on a twin over the reader's connection, on the reader's thread.
        self._reader: tuple[Repository[Any], Offload] | None = (
            None if offload is None or reader is None else (type(self)(reader.db), reader.offload)
        )


class offloadable(Generic[P, T]):
    """Marks a repository method; see the module docstring for what it returns in each mode."""

    reads_only = False

    def __init__(self, method: Callable[Concatenate[Any, P], T]) -> None:
        self.method = method
        self.__doc__ = method.__doc__

    @overload
    def __get__(self, repo: None, owner: type[Any]) -> offloadable[P, T]: ...
    @overload
    def __get__(self, repo: Repository[Sync], owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, repo: Repository[Async], owner: type[Any]) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, repo: Repository[Any] | None, owner: type[Any]) -> Any:
        if repo is None:
            return self
        offload = repo._offload
        if offload is None:
            return types.MethodType(self.method, repo)
        method, twin = self.method, repo._twin
        if self.reads_only and repo._reader is not None:
            twin, offload = repo._reader

        @functools.wraps(method)
        async def offloaded(*args: P.args, **kwargs: P.kwargs) -> T:
            return await offload(functools.partial(method, twin, *args, **kwargs))

        return offloaded


class readonly(offloadable[P, T]):
    """Marks a repository method that only reads (``self._db.read()``): AsyncStore runs it on the reader."""

    reads_only = True
