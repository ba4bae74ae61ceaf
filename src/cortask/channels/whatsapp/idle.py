"""Giving memory back once the pipeline has gone quiet (issue #18).

After a burst (1,000 chats at once, bench/scale.py) Python keeps much of the memory it used at the
peak: garbage cycles wait for the collector, glibc keeps freed heap pages mapped, and pymalloc
keeps every arena that still holds one live object (the largest part, which only allocating less
at the peak would shrink). `release_memory` returns the first two; `IdleRelease` calls it once per
quiet spell, never on a message's path.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import Protocol

IDLE_RELEASE_S = 5.0  # quiet this long after the last chat's worker was released


class Handle(Protocol):
    def cancel(self) -> None: ...


class IdleRelease:
    """Runs `release` `delay` s after `idle()`, unless `busy()` came first; once per quiet spell.

    `call_later` is the event loop's (or a test's clock): arming and cancelling are all that
    happen while messages flow."""

    def __init__(
        self, delay: float, release: Callable[[], None], call_later: Callable[[float, Callable[[], None]], Handle]
    ) -> None:
        self._delay = delay
        self._release = release
        self._call_later = call_later
        self._timer: Handle | None = None

    def busy(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def idle(self) -> None:
        if self._timer is None:
            self._timer = self._call_later(self._delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._release()


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS, Windows)."""
    import ctypes  # here, not at import: start-up time counts (bench/startup.py)

    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # the libc this process runs on
    except (OSError, AttributeError, TypeError):
        return None
    return trim


def release_memory() -> None:
    """Collect garbage cycles, then hand glibc's free heap pages (every thread's) back to the system."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
