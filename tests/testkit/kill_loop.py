"""The kill loop: the real service (`cortask serve`, its sidecar, real Baileys) on a wasim sandbox,
killed with SIGKILL at random moments while contacts keep writing; afterwards, every message that
passed access control must have exactly one reply, no re-scan may have been needed, and the auth
directory must still load.

Used by the test suite (a few dozen cycles) and by `bench/kill_loop.py` (hundreds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cortask.channels.whatsapp.authstore import AuthStore
from testkit.driven import ServedService, Writers, count_replies, link, settle, sidecars, start_linked
from wasim.server.app import Wasim

CONTACTS = ("+4915123456789", "+447911123456", "+14155550123")


@dataclass
class KillLoopResult:
    cycles: int = 0
    sent: int = 0
    answered_once: int = 0
    answered_twice: int = 0
    lost: int = 0
    rescans: int = 0
    service_kills: int = 0
    sidecar_kills: int = 0
    auth_loads: bool = False
    leftover_sidecars: int = 0  # sidecars of this auth directory still running after the service stopped
    seconds: float = 0.0
    lost_texts: list[str] = field(default_factory=list)
    # For each lost message, what wasim saw of it and the kills around it, to find the cause.
    lost_stories: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def run_kill_loop(
    workdir: Path, cycles: int, *, seed: int = 0, progress: Callable[[str], None] | None = None
) -> KillLoopResult:
    rng = random.Random(seed)
    result = KillLoopResult()
    say = progress or (lambda _: None)
    started = time.monotonic()
    home = workdir / "home"
    timeline = _Timeline(workdir / "timeline.jsonl")
    async with Wasim(workdir / "wasim") as sim:
        recorder = asyncio.create_task(timeline.follow(sim))
        service = ServedService(
            home, sim, workdir / "service.log", env={"CORTASK_WHATSAPP_RECONNECT_BASE_SECONDS": "0.2"},
            serve_args=["--agent", "echo"],
        )  # fmt: skip
        await start_linked(service, sim, CONTACTS)
        # people's pace, about the channel's sending pace (its token bucket): faster writers
        # only make the replies queue up behind the pacing
        writer = Writers(sim.messaging.send, CONTACTS, rng, lambda r: r.uniform(0.4, 1.4), "m")
        writing = asyncio.create_task(writer.run())
        try:
            for cycle in range(cycles):
                await asyncio.sleep(rng.uniform(0.0, 1.5))
                await _kill_one(service, rng, timeline, result)
                await _recover(service, sim, result)
                result.cycles = cycle + 1
                say(f"cycle {cycle + 1}/{cycles}: {len(writer.texts)} sent")
        finally:
            await writer.stop(writing)

        await settle(sim, writer.texts, CONTACTS, say, quiet=30, poll=0.2, after=1)
        await service.stop()
        say("service stopped")
        result.leftover_sidecars = await _sweep_sidecars(home / "whatsapp-auth")
        _count_replies(result, sim, writer.texts)
        recorder.cancel()
        timeline.drain(sim)
        result.lost_stories = {
            t: _journal_line(home / "cortask.db", writer.ids[t], timeline) for t in result.lost_texts
        }
        result.auth_loads = _auth_loads(home / "whatsapp-auth", say)
    result.seconds = round(time.monotonic() - started, 1)
    return result


async def _kill_one(service: ServedService, rng: random.Random, timeline: _Timeline, result: KillLoopResult) -> None:
    """SIGKILL the service (and start it again) or, as often, its sidecar (the service restarts that)."""
    if rng.random() < 0.5:
        service.kill()
        timeline.note("kill.service")
        result.service_kills += 1
        await service.start()
        return
    pid = service.sidecar_pid()
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        timeline.note("kill.sidecar", pid=pid)
        result.sidecar_kills += 1


async def _recover(service: ServedService, sim: Wasim, result: KillLoopResult) -> None:
    """Wait for the channel to come back after a kill; scan again (counted) if the link was lost."""
    # A sidecar killed again and again before its connection was stable for a minute is
    # retried with growing waits (up to 102 s at the 10th of the 0.2 s base): wait them out.
    state = await service.wait_state(
        lambda s: s in ("open", "unlinked", "logged_out"), "the channel to come back", timeout=180
    )
    if state != "open":
        result.rescans += 1  # the link was lost: a person would have to scan again
        await link(service, sim)


async def _sweep_sidecars(auth_dir: Path) -> int:
    """Kill the sidecars of `auth_dir` still running after the service stopped; how many there were."""
    # A sidecar must leave with its service, also one whose service was killed: a survivor
    # keeps the WhatsApp socket and swallows messages meant for its successor.
    await asyncio.sleep(2)
    leftovers = sidecars(auth_dir)
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    return len(leftovers)


def _count_replies(result: KillLoopResult, sim: Wasim, texts: dict[str, str]) -> None:
    replies = count_replies(sim, texts, CONTACTS)
    result.sent, result.answered_once = replies.sent, replies.answered_once
    result.answered_twice = replies.answered_twice
    result.lost_texts = sorted(replies.lost_texts, key=lambda t: int(t[1:]))
    result.lost = len(result.lost_texts)


def _auth_loads(auth_dir: Path, say: Callable[[str], None]) -> bool:
    """Whether the auth directory still loads, and is linked, after all the kills."""
    loads = False
    try:
        store = AuthStore.open(auth_dir)
        loads = store.is_linked()
        store.close()
    except Exception as exc:
        say(f"the auth directory does not load: {exc}")
    return loads


class _Timeline:
    """wasim's events and the loop's kills, in order, in a JSON-lines file (wasim keeps only the
    latest events in memory), so a lost message's story can be told afterwards."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("a", encoding="utf-8")
        self._seen = 0

    def note(self, kind: str, **data: Any) -> None:
        self._file.write(json.dumps({"at": time.time(), "kind": kind, **data}) + "\n")

    def drain(self, sim: Wasim) -> None:
        for event in sim.events.since(self._seen):
            self._file.write(json.dumps(event.to_json(), default=str) + "\n")
            self._seen = event.seq
        self._file.flush()

    async def follow(self, sim: Wasim) -> None:
        while True:
            self.drain(sim)
            await asyncio.sleep(0.2)

    def story(self, message_id: str, around: float = 3.0) -> list[str]:
        """The events that name `message_id`, and the kills within `around` seconds of them."""
        self._file.flush()
        events = [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines()]
        mine = [e for e in events if message_id in json.dumps(e)]
        if not mine:
            return []
        start, end = mine[0]["at"] - around, mine[-1]["at"] + around
        kills = [e for e in events if e["kind"].startswith("kill.") and start <= e["at"] <= end]
        told = sorted(mine + kills, key=lambda e: e["at"])
        return [f"{e['at'] - start - around:+.3f} s {e['kind']} {_brief(e)}" for e in told]


def _journal_line(db: Path, message_id: str, timeline: _Timeline) -> list[str]:
    """What the product recorded of a lost message (its journal entry, the reply it sent), then
    what wasim saw of the message and of that reply."""
    with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as conn:
        row = conn.execute(
            "SELECT state, reply_message_id, error FROM inbound_journal WHERE message_id = ?", (message_id,)
        ).fetchone()
    if row is None:
        return ["journal: never recorded", *timeline.story(message_id)]
    state, reply_id, error = row
    lines = [f"journal: {state}, reply {reply_id or '-'}{f', error {error}' if error else ''}"]
    return lines + timeline.story(message_id) + (["reply:", *timeline.story(reply_id)] if reply_id else [])


def _brief(event: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in event.items() if k not in ("at", "kind", "seq", "node"))[:300]
