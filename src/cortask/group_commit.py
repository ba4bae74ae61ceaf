"""`GroupCommit`: a database's writer thread, sharing one commit among the writes waiting at once.

Both databases use it: the Cortask store (`cortask.store.aio`) and the WhatsApp auth store, whose
Signal key writes the sidecar sends while earlier ones are still being flushed (issue #18).

Writes run one at a time in the order they were submitted, on one thread, as before. When the
thread finds more than one waiting, it runs them inside one transaction (each call's own
transaction becomes a savepoint in it) and commits once: one fsync instead of one per write, which
is where the time goes under a burst (synchronous=FULL makes every commit wait for the disk).
Durability is unchanged: no caller hears back before the commit that holds its write is on disk.

A call that raises (a duplicate, a missing row) is rolled back to its savepoint and fails alone;
the others commit. A failure of the database itself (locked past the busy timeout, disk full: an
`OperationalError`) rolls back the whole group and every call in it fails with it, as each would
have failed on its own; the callers retry (the channel's journal does).
"""

from __future__ import annotations

import contextlib
import functools
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import AbstractContextManager
from typing import Any, ParamSpec, Protocol, TypeVar

__all__ = ["MAX_GROUP", "GroupCommit", "Nesting", "Transactional"]

P = ParamSpec("P")
T = TypeVar("T")
MAX_GROUP = 64  # bounds how long the first write of a group waits for the others to run
_STOP = object()


class Transactional(Protocol):
    """What a group runs in: `write()` opens a write transaction (one commit), and a `write()`
    inside it is a savepoint that can be rolled back alone."""

    def write(self) -> AbstractContextManager[sqlite3.Connection]: ...


class Nesting:
    """One connection's transactions, nestable, as a `Transactional.write()` must be: the outermost
    BEGINs and COMMITs (or rolls back), an inner one is a savepoint that a raising block rolls back
    alone. Not thread-safe: the connection's owner holds its lock around `enter`."""

    def __init__(self) -> None:
        self.depth = 0

    @contextlib.contextmanager
    def enter(self, conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        if self.depth:
            name = f"sp{self.depth}"
            conn.execute(f"SAVEPOINT {name}")
            self.depth += 1
            try:
                yield conn
            except BaseException:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
                raise
            else:
                conn.execute(f"RELEASE {name}")
            finally:
                self.depth -= 1
            return
        conn.execute(begin)
        self.depth = 1
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        finally:
            self.depth = 0


class _Work:
    __slots__ = ("call", "future")

    def __init__(self, future: Future[Any], call: Callable[[], Any]) -> None:
        self.future, self.call = future, call


class GroupCommit(Executor):
    """An executor with one thread; set `database` once it is open, and waiting writes share commits."""

    def __init__(self, name: str = "cortask-store", max_group: int = MAX_GROUP) -> None:
        self.database: Transactional | None = None  # until set (the database is opened on this thread), calls run alone
        self._max_group = max_group
        self._queue: queue.SimpleQueue[_Work | object] = queue.SimpleQueue()
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        if self._stopped:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future: Future[T] = Future()
        self._queue.put(_Work(future, functools.partial(fn, *args, **kwargs)))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop after the calls already submitted (`cancel_futures` is not supported: they all run)."""
        if not self._stopped:
            self._stopped = True
            self._queue.put(_STOP)
        if wait and threading.current_thread() is not self._thread:
            self._thread.join()

    def _work(self) -> None:
        carried: _Work | object | None = None
        while True:
            first = carried if carried is not None else self._queue.get()
            carried = None
            if first is _STOP:
                return
            assert isinstance(first, _Work)
            group = [first]
            while len(group) < self._max_group:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(more, _Work):
                    carried = more
                    break
                group.append(more)
            group = [work for work in group if work.future.set_running_or_notify_cancel()]
            database = self.database
            if len(group) > 1 and database is not None:
                _run_together(database, group)
            else:
                for work in group:
                    _run_alone(work)


def _run_alone(work: _Work) -> None:
    try:
        result = work.call()
    except BaseException as exc:  # the caller gets it, as from a ThreadPoolExecutor
        work.future.set_exception(exc)
    else:
        work.future.set_result(result)


def _run_together(database: Transactional, group: list[_Work]) -> None:
    done: list[tuple[_Work, BaseException | None, Any]] = []
    try:
        with database.write() as conn:
            for work in group:
                try:
                    done.append((work, None, work.call()))
                except sqlite3.OperationalError:
                    raise  # the database failed: the whole group is rolled back
                except BaseException as exc:
                    if not conn.in_transaction:  # SQLite gave up the transaction: nothing of the group stands
                        raise sqlite3.OperationalError(f"the transaction was rolled back ({exc})") from exc
                    done.append((work, exc, None))  # rolled back to its own savepoint; the others go on
    except BaseException as exc:
        for work in group:
            work.future.set_exception(exc)
        return
    for work, error, result in done:  # only now: the commit that holds their writes is on disk
        if error is not None:
            work.future.set_exception(error)
        else:
            work.future.set_result(result)
