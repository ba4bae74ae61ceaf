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
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cortask.channels.whatsapp.authstore import AuthStore
from testkit.gateway import gateway_token
from testkit.ports import free_port
from wasim.server.app import Wasim

CONTACTS = ("+4915123456789", "+447911123456", "+14155550123")
ECHO_PREFIX = "Echo: "


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


def _sidecars(auth_dir: Path, parent: int | None = None) -> list[int]:
    """Sidecar processes serving `auth_dir`, all of them or only the children of `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"index.mjs" not in (entry / "cmdline").read_bytes():
                continue
            env = (entry / "environ").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if parent is not None and ppid != parent:
            continue
        if any(f"CORTASK_SIDECAR_SPILL_DIR={d}".encode() in env for d in (auth_dir, auth_dir.resolve())):
            found.append(int(entry.name))
    return found


class _Service:
    """`cortask serve` as a child process, restarted after each kill."""

    def __init__(self, home: Path, sim: Wasim, log_path: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.env = {
            **os.environ,
            "CORTASK_HOME": str(home),
            "CORTASK_WHATSAPP_SANDBOX_URL": sim.url,
            "CORTASK_WHATSAPP_SANDBOX_ROOT_KEY": sim.root_public_key,
            "CORTASK_WHATSAPP_RECONNECT_BASE_SECONDS": "0.2",
        }
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 (returns at once; killed and reaped synchronously)
                [sys.executable, "-m", "cortask", "serve", "--port", str(self.port), "--agent", "echo"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        await self.wait(lambda h: True, what="the gateway to answer")

    async def health(self) -> dict[str, Any] | None:
        """The channel's state, as {"whatsapp": state}, or None while the gateway does not answer."""
        try:
            async with httpx.AsyncClient(timeout=2, headers=self._auth()) as client:
                resp = await client.get(self.url + "/whatsapp/status")
            return {"whatsapp": resp.json()["state"]} if resp.status_code == 200 else None
        except (httpx.HTTPError, OSError):
            return None

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {gateway_token(self.home)}"}

    async def wait(self, ok: Callable[[dict[str, Any]], bool], what: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the service exited (code {self.proc.returncode}); see {self.log_path}")
            health = await self.health()
            if health is not None and ok(health):
                return health
            await asyncio.sleep(0.05)
        raise TimeoutError(f"waited {timeout:.0f} s for {what}; see {self.log_path}")

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        async with httpx.AsyncClient(timeout=30, headers=self._auth()) as client:
            resp = await client.request(method, self.url + path, json=body)
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text}")
        return resp.json()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # only the service: its sidecar must notice on its own
        self.proc.wait()

    def sidecar_pid(self) -> int | None:
        if self.proc is None:
            return None
        return next(iter(_sidecars(self.home / "whatsapp-auth", parent=self.proc.pid)), None)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 20)
            except TimeoutError:
                self.proc.kill()
                self.proc.wait()


async def _link(service: _Service, sim: Wasim) -> None:
    await service.api("POST", "/whatsapp")
    qr = await service.api("POST", "/whatsapp/qr")
    await sim.phone.scan(qr["qr"])
    await service.wait(lambda h: h["whatsapp"] == "open", "the channel to open after the scan")


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
        service = await _start_linked(sim, home, workdir / "service.log")
        writer = _Writer(sim, rng)
        writing = asyncio.create_task(writer.run())
        try:
            for cycle in range(cycles):
                await asyncio.sleep(rng.uniform(0.0, 1.5))
                await _kill_one(service, rng, timeline, result)
                await _recover(service, sim, result)
                result.cycles = cycle + 1
                say(f"cycle {cycle + 1}/{cycles}: {len(writer.texts)} sent")
        finally:
            writer.sending = False
            await writing

        await _settle(sim, writer.texts, say)
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


async def _start_linked(sim: Wasim, home: Path, log_path: Path) -> _Service:
    """The service started and linked by a scan, with every contact allowed to write."""
    for i, phone in enumerate(CONTACTS):
        sim.add_contact(phone, f"Contact {i}")
    service = _Service(home, sim, log_path)
    await service.start()
    await _link(service, sim)
    for phone in CONTACTS:
        await service.api("POST", "/whatsapp/contacts", {"phone": phone, "permission": "write"})
    return service


class _Writer:
    """The contacts, writing to the account until told to stop."""

    def __init__(self, sim: Wasim, rng: random.Random) -> None:
        self.sim = sim
        self.rng = rng
        self.sending = True
        self.texts: dict[str, str] = {}  # text -> the contact that sent it
        self.ids: dict[str, str] = {}  # text -> wasim's message id

    async def run(self) -> None:
        n = 0
        while self.sending:
            phone = self.rng.choice(CONTACTS)
            text = f"m{n}"
            n += 1
            self.texts[text] = phone
            self.ids[text] = await self.sim.messaging.send(phone, text)
            # people's pace, about the channel's sending pace (its token bucket): faster
            # writers only make the replies queue up behind the pacing
            await asyncio.sleep(self.rng.uniform(0.4, 1.4))


async def _kill_one(service: _Service, rng: random.Random, timeline: _Timeline, result: KillLoopResult) -> None:
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


async def _recover(service: _Service, sim: Wasim, result: KillLoopResult) -> None:
    """Wait for the channel to come back after a kill; scan again (counted) if the link was lost."""
    # A sidecar killed again and again before its connection was stable for a minute is
    # retried with growing waits (up to 102 s at the 10th of the 0.2 s base): wait them out.
    health = await service.wait(
        lambda h: h["whatsapp"] in ("open", "unlinked", "logged_out"),
        "the channel to come back",
        timeout=180,
    )
    if health["whatsapp"] != "open":
        result.rescans += 1  # the link was lost: a person would have to scan again
        await _link(service, sim)


async def _settle(sim: Wasim, texts: dict[str, str], say: Callable[[str], None]) -> None:
    """Let the last replies arrive: until every message has one, or nothing changes for 30 s."""
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < 30:
        answered = len(_replies(sim) & set(texts))
        if answered == len(texts):
            break
        if answered != last:
            last, quiet_since = answered, time.monotonic()
        await asyncio.sleep(0.2)
    say(f"settled: {len(_replies(sim) & set(texts))} of {len(texts)} answered")
    await asyncio.sleep(1)  # a second reply would come right after the first


async def _sweep_sidecars(auth_dir: Path) -> int:
    """Kill the sidecars of `auth_dir` still running after the service stopped; how many there were."""
    # A sidecar must leave with its service, also one whose service was killed: a survivor
    # keeps the WhatsApp socket and swallows messages meant for its successor.
    await asyncio.sleep(2)
    leftovers = _sidecars(auth_dir)
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    return len(leftovers)


def _count_replies(result: KillLoopResult, sim: Wasim, texts: dict[str, str]) -> None:
    counts = Counter(_reply_texts(sim))
    result.sent = len(texts)
    result.answered_once = sum(1 for t in texts if counts[t] == 1)
    result.answered_twice = sum(1 for t in texts if counts[t] > 1)
    result.lost_texts = sorted((t for t in texts if counts[t] == 0), key=lambda t: int(t[1:]))
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


def _reply_texts(sim: Wasim) -> list[str]:
    """The message each reply answers (the echo agent repeats it), one entry per reply id."""
    found = []
    for phone in CONTACTS:
        for entry in sim.inbox(phone):
            text = entry.get("text")
            if entry["type"] == "message" and isinstance(text, str) and text.startswith(ECHO_PREFIX):
                found.append(text[len(ECHO_PREFIX) :])
    return found


def _replies(sim: Wasim) -> set[str]:
    return set(_reply_texts(sim))
