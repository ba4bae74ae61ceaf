"""The soak: the real service (`cortask serve`, its sidecar, real Baileys) on wasim for a realistic
day compressed into minutes: 50 contacts writing, a slow agent (a webhook answering after a random
0–3 s), the sidecar killed with SIGKILL now and then, and wasim itself restarted. Afterwards every
message must have exactly one reply; the service's memory and open files are sampled throughout.

Used by `bench/soak.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from testkit.driven import ECHO_PREFIX, ServedService, Writers, count_replies, settle, sidecars, start_linked
from testkit.ports import free_port
from wasim.server.app import Wasim

CONTACT_COUNT = 50


@dataclass
class SoakResult:
    minutes: float = 0.0
    sent: int = 0
    answered_once: int = 0
    answered_twice: int = 0
    lost: int = 0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_max_mb: float = 0.0
    db_mb: float = 0.0
    open_fds_start: int = 0
    open_fds_end: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SoakPlan:
    minutes: float = 20.0
    rate: float = 2.0  # messages per second from all contacts together
    sidecar_kill_every: float = 90.0  # seconds, on average
    wasim_restart_every: float = 300.0  # seconds, on average
    agent_max_seconds: float = 3.0
    pacing_per_second: float = 4.0  # the channel's sending pace (a person's is 1 a second)
    seed: int = 1

    @property
    def warm_up(self) -> float:
        """Seconds before memory and open files are taken as the baseline."""
        return min(60.0, self.minutes * 60 * 0.2)


def contacts() -> list[str]:
    return [f"+49151{n:08d}" for n in range(1, CONTACT_COUNT + 1)]


class SlowAgent:
    """A webhook agent that thinks for a random 0–`max_seconds` s, then echoes."""

    def __init__(self, rng: random.Random, max_seconds: float) -> None:
        self.rng = rng
        self.max_seconds = max_seconds
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/"

    async def _answer(self, request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(self.rng.uniform(0.0, self.max_seconds))
        return web.json_response({"reply": ECHO_PREFIX + str(body["text"])})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class Sandbox:
    """wasim, restartable on the same port and state directory (as a server restart would be)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.sim = Wasim(state_dir)
        self.restarts = 0
        self.delivered: set[str] = set()  # ids of messages that reached the device
        self._seen = 0
        self._follower: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.sim.start()
        self._follower = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        # wasim keeps its latest 10,000 events: note the deliveries as they happen
        while True:
            self.note_deliveries()
            await asyncio.sleep(0.2)

    def note_deliveries(self) -> None:
        for event in self.sim.events.since(self._seen):
            if event.kind == "delivered":
                self.delivered.add(str(event.data.get("id")))
            self._seen = event.seq

    async def restart(self) -> None:
        port = self.sim.port
        await self.sim.stop()
        self.note_deliveries()
        self.sim, self._seen = Wasim(self.state_dir, port=port), 0
        await self.sim.start()
        self.restarts += 1

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
        await self.sim.stop()


async def run_soak(workdir: Path, plan: SoakPlan, progress: Callable[[str], None] | None = None) -> SoakResult:
    say = progress or (lambda _: None)
    rng = random.Random(plan.seed)
    result = SoakResult()
    home = workdir / "home"
    sandbox = Sandbox(workdir / "wasim")
    await sandbox.start()
    agent = SlowAgent(random.Random(plan.seed + 1), plan.agent_max_seconds)
    await agent.start()
    service = ServedService(
        home, sandbox.sim, workdir / "service.log",
        env={"CORTASK_WHATSAPP_RECONNECT_BASE_SECONDS": "0.5",
             "CORTASK_WHATSAPP_PACING_PER_SECOND": str(plan.pacing_per_second)},
        status_timeout=5, poll=0.1, stop_grace=30,
    )  # fmt: skip

    async def webhook_agent(service: ServedService) -> None:
        await service.api("PUT", "/agent", {"provider": "webhook", "settings": {"url": agent.url, "timeout": 30}})

    await start_linked(service, sandbox.sim, contacts(), webhook_agent)
    # the wasim of the moment: a restart replaces it
    writers = Writers(
        lambda phone, text: sandbox.sim.messaging.send(phone, text), contacts(), rng,
        lambda r: r.expovariate(plan.rate), "s",
    )  # fmt: skip
    writing = asyncio.create_task(writers.run())
    samples: list[float] = []
    started = time.monotonic()
    try:
        await _load(service, sandbox, writers, plan, rng, result, samples, say)
    finally:
        with contextlib.suppress(Exception):
            await writers.stop(writing)
    result.minutes = round((time.monotonic() - started) / 60, 2)
    await settle(sandbox.sim, writers.texts, contacts(), say, quiet=60, poll=0.5, after=2)
    result.rss_end_mb, result.open_fds_end = round(service.rss_mb(), 1), service.open_fds()
    result.rss_max_mb = round(max([*samples, result.rss_end_mb]), 1)
    await service.stop()
    result.db_mb = round(sum(_size(home / f"cortask.db{s}") for s in ("", "-wal")) / 2**20, 2)
    replies = count_replies(sandbox.sim, writers.texts, contacts())
    result.sent, result.answered_once = replies.sent, replies.answered_once
    result.answered_twice = replies.answered_twice
    result.lost = len(replies.lost_texts)
    for pid in sidecars(home / "whatsapp-auth"):
        os.kill(pid, signal.SIGKILL)  # none should be left; never leave one running
    await agent.stop()
    await sandbox.stop()
    say(f"sidecar kills and wasim restarts done; {sandbox.restarts} wasim restarts")
    return result


async def _load(
    service: ServedService,
    sandbox: Sandbox,
    writers: Writers,
    plan: SoakPlan,
    rng: random.Random,
    result: SoakResult,
    samples: list[float],
    say: Callable[[str], None],
) -> None:
    """Run for the planned minutes: sample memory, kill the sidecar and restart wasim as planned."""
    started = time.monotonic()
    end = started + plan.minutes * 60
    next_kill = started + rng.expovariate(1 / plan.sidecar_kill_every)
    next_restart = started + rng.expovariate(1 / plan.wasim_restart_every)
    baseline_taken = False
    kills = 0
    while (now := time.monotonic()) < end:
        samples.append(service.rss_mb())
        if not baseline_taken and now - started >= plan.warm_up:
            result.rss_start_mb, result.open_fds_start = round(service.rss_mb(), 1), service.open_fds()
            baseline_taken = True
        if now >= next_kill:
            pid = service.sidecar_pid()
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                kills += 1
            next_kill = now + rng.expovariate(1 / plan.sidecar_kill_every)
        if now >= next_restart:
            await _restart_wasim(service, sandbox, writers, say)
            next_restart = time.monotonic() + rng.expovariate(1 / plan.wasim_restart_every)
        say(f"{(now - started) / 60:5.1f} min: {len(writers.texts)} sent, {kills} sidecar kills, "
            f"{sandbox.restarts} wasim restarts, rss {samples[-1]:.0f} MB, fds {service.open_fds()}")  # fmt: skip
        await asyncio.sleep(min(5.0, max(0.0, end - time.monotonic())))
    if not baseline_taken:
        result.rss_start_mb, result.open_fds_start = round(service.rss_mb(), 1), service.open_fds()


async def _restart_wasim(
    service: ServedService, sandbox: Sandbox, writers: Writers, say: Callable[[str], None]
) -> None:
    """Restart wasim once what the contacts sent has reached the device: wasim keeps its offline
    queue in memory only (WhatsApp keeps it for weeks), so a message waiting there would be lost
    by the sandbox, not by us. Replies still on their way are ours to get out after the restart."""
    await writers.pause()
    delivered = await _wait_delivered(sandbox, set(writers.ids.values()), timeout=60)
    await sandbox.restart()
    say(f"wasim restarted ({'after' if delivered else 'without'} every message reaching the device)")
    writers.resume()
    await service.wait_state(lambda s: s == "open", "the channel to reopen after the wasim restart", timeout=180)


async def _wait_delivered(sandbox: Sandbox, ids: set[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sandbox.note_deliveries()
        if ids <= sandbox.delivered:
            await asyncio.sleep(1.0)  # and acknowledged: the device acks at once
            return True
        await asyncio.sleep(0.2)
    return False


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
