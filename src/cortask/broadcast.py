"""One value, many listeners: the fan-out the channel (status, activity, QR codes) and the
gateway's event stream share.

    changes: Broadcast[Status] = Broadcast(replay_latest=True)
    with changes.subscribe() as sub:      # registered now: nothing published after this is missed
        async for status in sub: ...
    changes.publish(status)

Each subscriber has its own queue, so a slow one never holds up the publisher or the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class _End:
    """Marks the end of a broadcast in a subscriber's queue."""


_END = _End()


class Subscription(Generic[T]):
    """Every value published from the moment of subscribing, in order, until closed or ended."""

    def __init__(self, source: Broadcast[T]) -> None:
        self._source = source
        self._queue: asyncio.Queue[T | _End] = asyncio.Queue()
        self._closed = False

    def _put(self, value: T | _End) -> None:
        self._queue.put_nowait(value)

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._closed:
            raise StopAsyncIteration
        value = await self._queue.get()
        if isinstance(value, _End):
            self.close()
            raise StopAsyncIteration
        return value

    def close(self) -> None:
        """Stop receiving; what is still queued is dropped."""
        self._closed = True
        self._source._remove(self)

    def __enter__(self) -> Subscription[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Subscription[T]:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Broadcast(Generic[T]):
    """Publish values to every current subscriber. With `replay_latest`, a new subscriber gets the
    latest value first (a status: what it is now, then every change)."""

    def __init__(self, *, replay_latest: bool = False) -> None:
        self._replay = replay_latest
        self._subscribers: list[Subscription[T]] = []
        self._latest: T | None = None
        self._has_latest = False
        self._ended = False

    @property
    def latest(self) -> T | None:
        return self._latest

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, value: T) -> None:
        self._latest, self._has_latest = value, True
        for sub in self._subscribers:
            sub._put(value)

    def subscribe(self) -> Subscription[T]:
        sub: Subscription[T] = Subscription(self)
        if self._ended:
            sub._put(_END)
            return sub
        if self._replay and self._has_latest:
            sub._put(self._latest)  # type: ignore[arg-type]  # set together with _has_latest
        self._subscribers.append(sub)
        return sub

    def end(self) -> None:
        """End every subscription (their loops finish); later subscribers end at once. Used on
        shutdown, so nothing waits for a value that will never come."""
        self._ended = True
        for sub in list(self._subscribers):
            sub._put(_END)
        self._subscribers.clear()

    def _remove(self, sub: Subscription[T]) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)
