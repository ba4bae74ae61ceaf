"""The real service driven from outside, as the kill loop and the soak drive it: `cortask serve` as a
child process on a wasim sandbox (started, linked by a scan, asked over its API, killed, stopped),
the contacts writing to it, and the replies they got, counted.

Used by `testkit.kill_loop` and `testkit.soak`.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from testkit.gateway import gateway_token
from testkit.ports import free_port
from wasim.server.app import Wasim

ECHO_PREFIX = "Echo: "  # the echo agents answer with the message's text after this


def sidecars(auth_dir: Path, parent: int | None = None) -> list[int]:
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


class ServedService:
    """`cortask serve` as a child process on `sim`, restartable after a kill. `env` adds to its
    environment, `serve_args` to its command line."""

    def __init__(
        self,
        home: Path,
        sim: Wasim,
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        serve_args: Sequence[str] = (),
        status_timeout: float = 2.0,
        poll: float = 0.05,
        stop_grace: float = 20.0,
    ) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.env = {
            **os.environ,
            "CORTASK_HOME": str(home),
            "CORTASK_WHATSAPP_SANDBOX_URL": sim.url,
            "CORTASK_WHATSAPP_SANDBOX_ROOT_KEY": sim.root_public_key,
            **(env or {}),
        }
        self.serve_args = list(serve_args)
        self.log_path = log_path
        self.status_timeout, self.poll, self.stop_grace = status_timeout, poll, stop_grace
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 (returns at once; killed and reaped synchronously)
                [sys.executable, "-m", "cortask", "serve", "--port", str(self.port), *self.serve_args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        await self.wait_state(lambda s: True, "the gateway to answer")

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {gateway_token(self.home)}"}

    async def state(self) -> str | None:
        """The channel's state, or None while the gateway does not answer."""
        try:
            async with httpx.AsyncClient(timeout=self.status_timeout, headers=self._auth()) as client:
                resp = await client.get(self.url + "/whatsapp/status")
            return str(resp.json()["state"]) if resp.status_code == 200 else None
        except (httpx.HTTPError, OSError):
            return None

    async def wait_state(self, ok: Callable[[str], bool], what: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the service exited (code {self.proc.returncode}); see {self.log_path}")
            state = await self.state()
            if state is not None and ok(state):
                return state
            await asyncio.sleep(self.poll)
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
        return next(iter(sidecars(self.home / "whatsapp-auth", parent=self.proc.pid)), None)

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS for the service")

    def open_fds(self) -> int:
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.to_thread(self.proc.wait), self.stop_grace)
            except TimeoutError:
                self.proc.kill()
                self.proc.wait()


async def link(service: ServedService, sim: Wasim) -> None:
    """Add the channel, and scan its QR code with wasim's phone; returns once it is open."""
    await service.api("POST", "/whatsapp")
    qr = await service.api("POST", "/whatsapp/qr")
    await sim.phone.scan(qr["qr"])
    await service.wait_state(lambda s: s == "open", "the channel to open after the scan")


async def start_linked(
    service: ServedService,
    sim: Wasim,
    phones: Sequence[str],
    configure: Callable[[ServedService], Awaitable[None]] | None = None,
) -> ServedService:
    """`service` started (and `configure`d: its agent, say) and linked by a scan, with every one
    of `phones` a contact in wasim and trusted to write."""
    for i, phone in enumerate(phones):
        sim.add_contact(phone, f"Contact {i}")
    await service.start()
    if configure is not None:
        await configure(service)
    await link(service, sim)
    for phone in phones:
        await service.api("POST", "/whatsapp/contacts", {"phone": phone, "permission": "write"})
    return service


class Writers:
    """The contacts, writing to the account until told to stop (pausable): `send` sends a text from
    a phone and returns wasim's message id; `gap` draws the wait between two messages."""

    def __init__(
        self,
        send: Callable[[str, str], Awaitable[str]],
        phones: Sequence[str],
        rng: random.Random,
        gap: Callable[[random.Random], float],
        prefix: str,
    ) -> None:
        self.send, self.phones, self.rng, self.gap, self.prefix = send, phones, rng, gap, prefix
        self.sending = True
        self.open = asyncio.Event()
        self.open.set()
        self.idle = asyncio.Event()  # set between sends: a pause waits for the send under way
        self.idle.set()
        self.texts: dict[str, str] = {}  # text -> the contact that sent it
        self.ids: dict[str, str] = {}  # text -> wasim's message id

    async def run(self) -> None:
        n = 0
        while self.sending:
            await self.open.wait()
            self.idle.clear()
            phone = self.rng.choice(self.phones)
            text = f"{self.prefix}{n}"
            n += 1
            self.texts[text] = phone
            self.ids[text] = await self.send(phone, text)
            self.idle.set()
            await asyncio.sleep(self.gap(self.rng))

    async def pause(self) -> None:
        self.open.clear()
        await self.idle.wait()

    def resume(self) -> None:
        self.open.set()

    async def stop(self, writing: asyncio.Task[None]) -> None:
        self.sending = False
        self.resume()
        await writing


def reply_texts(sim: Wasim, phones: Iterable[str]) -> list[str]:
    """The message each reply answers (the agent echoes it), one entry per reply received."""
    found = []
    for phone in phones:
        for entry in sim.inbox(phone):
            text = entry.get("text")
            if entry["type"] == "message" and isinstance(text, str) and text.startswith(ECHO_PREFIX):
                found.append(text[len(ECHO_PREFIX) :])
    return found


async def settle(
    sim: Wasim,
    texts: Mapping[str, str],
    phones: Iterable[str],
    say: Callable[[str], None],
    *,
    quiet: float,
    poll: float,
    after: float,
) -> None:
    """Let the last replies arrive: until every message has one, or nothing changes for `quiet`
    seconds; then `after` seconds more (a second reply would come right after the first)."""
    phones = list(phones)
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < quiet:
        answered = len(set(reply_texts(sim, phones)) & set(texts))
        if answered == len(texts):
            break
        if answered != last:
            last, quiet_since = answered, time.monotonic()
        await asyncio.sleep(poll)
    say(f"settled: {len(set(reply_texts(sim, phones)) & set(texts))} of {len(texts)} answered")
    await asyncio.sleep(after)


@dataclass(frozen=True)
class Replies:
    """What became of the messages sent: answered once, twice or more, or never (their texts)."""

    sent: int
    answered_once: int
    answered_twice: int
    lost_texts: list[str]


def count_replies(sim: Wasim, texts: Mapping[str, str], phones: Iterable[str]) -> Replies:
    counts = Counter(reply_texts(sim, phones))
    return Replies(
        sent=len(texts),
        answered_once=sum(1 for t in texts if counts[t] == 1),
        answered_twice=sum(1 for t in texts if counts[t] > 1),
        lost_texts=[t for t in texts if counts[t] == 0],
    )
