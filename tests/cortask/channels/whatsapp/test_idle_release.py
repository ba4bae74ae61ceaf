"""Memory goes back once per quiet spell (issue #18): the release waits until the pipeline has
been idle for a while, work that comes back first calls it off, and it never runs while a chat
is being answered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from test_reply_pipeline import FakeLink, make, message

from cortask.channels.whatsapp import idle, wire
from cortask.channels.whatsapp.idle import IdleRelease, release_memory
from cortask.channels.whatsapp.pipeline import ReplyPipeline


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None], Timer]] = []

    def call_later(self, delay: float, fire: Callable[[], None]) -> Timer:
        timer = Timer()
        self.timers.append((self.now + delay, fire, timer))
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [t for t in self.timers if t[0] <= self.now and not t[2].cancelled]
        self.timers = [t for t in self.timers if t not in due]
        for _, fire, _ in due:
            fire()


class Timer:
    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def releaser(clock: FakeClock, delay: float = 5.0) -> tuple[IdleRelease, list[float]]:
    released: list[float] = []
    return IdleRelease(delay, lambda: released.append(clock.now), clock.call_later), released


def test_memory_is_released_once_the_pipeline_has_been_idle_for_the_delay() -> None:
    clock = FakeClock()
    release, released = releaser(clock)
    release.idle()
    clock.advance(4)
    assert released == []
    clock.advance(1)
    assert released == [5.0]
    clock.advance(60)
    assert released == [5.0]  # once per quiet spell, not every 5 s


def test_work_that_comes_back_before_the_delay_calls_the_release_off() -> None:
    clock = FakeClock()
    release, released = releaser(clock)
    release.idle()
    clock.advance(3)
    release.busy()
    clock.advance(10)
    assert released == []
    release.idle()  # the next quiet spell starts its own delay
    clock.advance(4)
    assert released == []
    clock.advance(1)
    assert released == [18.0]


def test_idle_reported_again_within_a_spell_does_not_restart_or_double_it() -> None:
    clock = FakeClock()
    release, released = releaser(clock)
    release.idle()
    clock.advance(2)
    release.idle()
    clock.advance(3)
    assert released == [5.0]
    clock.advance(10)
    assert released == [5.0]  # the second report armed no timer of its own


def test_release_memory_runs_where_the_c_library_has_no_malloc_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    assert idle._malloc_trim() is not None  # glibc here
    release_memory()  # collects and trims, for real
    collected: list[int] = []
    trimmed: list[int] = []
    monkeypatch.setattr(idle.gc, "collect", lambda: collected.append(1) or 0)
    monkeypatch.setattr(idle, "_malloc_trim", lambda: lambda pad: trimmed.append(pad) or 1)
    release_memory()
    assert (collected, trimmed) == ([1], [0])  # every free page handed back, none kept as padding
    monkeypatch.setattr(idle, "_malloc_trim", lambda: None)
    release_memory()  # musl, macOS, Windows: collects only
    assert (collected, trimmed) == ([1, 1], [0])


async def answered(pipeline: ReplyPipeline, link: FakeLink, count: int) -> None:
    """Until `count` replies went out and every chat's worker was released."""
    async with asyncio.timeout(5):
        while sum(isinstance(c, wire.SendText) for c in link.sent) < count or pipeline.busy_chats:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_the_pipeline_releases_memory_after_its_last_chat_went_quiet_not_while_answering(tmp_path: Path) -> None:
    pipeline, link, _, _ = make(tmp_path, [True])
    releases: list[int] = []  # how many chats were busy at each release
    loop = asyncio.get_running_loop()
    pipeline._idle = IdleRelease(0.3, lambda: releases.append(pipeline.busy_chats), loop.call_later)
    await pipeline.arrive(message("M1"), "notify")
    await pipeline.arrive(message("M2"), "notify")
    await answered(pipeline, link, 2)
    assert releases == []  # idle, but not for long enough yet
    await asyncio.sleep(0.5)
    assert releases == [0]  # once, with no chat busy
    await pipeline.arrive(message("M3"), "notify")  # a new spell of work, then a new quiet spell
    await answered(pipeline, link, 3)
    await asyncio.sleep(0.5)
    assert releases == [0, 0]
    await pipeline.close()
